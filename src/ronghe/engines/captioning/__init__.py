"""Image-to-text: a captioner loaded through transformers' standard auto classes.

``AutoProcessor`` + ``AutoModelForImageTextToText`` (``AutoModelForVision2Seq`` on
transformers 4.x), then ``generate`` and ``batch_decode``: the classes transformers' own
image-to-text pipeline uses, so a BLIP, GIT or Florence-2 folder loads by pointing
``captioner_model`` at it (Florence-2 and other prompted models also take
``captioner_prompt``, e.g. ``<CAPTION>``).  ``bundled:demo-captioner`` is the small
captioner of the demo image model's world that ships with Ronghe.

Loading never contacts a hub: paths are local folders, loaded with ``local_files_only``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

BUNDLED = "bundled:"
MAX_NEW_TOKENS = 40


def resolve(path: str) -> Path:
    """``bundled:demo-captioner`` -> the shipped folder; anything else: a local folder."""
    if path.startswith(BUNDLED):
        from ronghe.engines.shipped import default_captioner_path

        if path != BUNDLED + "demo-captioner":
            raise ValueError(f"unknown bundled captioner {path!r}; known: "
                             f"{BUNDLED}demo-captioner")
        return default_captioner_path()
    return Path(path).expanduser()


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


class ImageCaptioner:
    """One loaded captioner; call it with a PIL image (or several) for their captions.

    Loads on first use and is safe to share between threads (one generation at a time:
    a captioner is small and torch already uses every thread it is given).
    """

    def __init__(self, path: str, prompt: str = "", device: str = "cpu") -> None:
        self.name = path
        self.path = resolve(path)
        self.prompt = prompt
        self.device = device
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            if not self.path.is_dir():
                raise FileNotFoundError(f"captioner_model: {self.path} is not a model folder")
            import transformers
            from transformers import AutoProcessor

            auto = (getattr(transformers, "AutoModelForImageTextToText", None)
                    or transformers.AutoModelForVision2Seq)
            processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
            model = auto.from_pretrained(self.path, local_files_only=True).to(self.device)
            self._loaded = (processor, model.eval())
        return self._loaded

    def caption_many(self, images: Sequence[Image.Image]) -> list[str]:
        import torch

        with self._lock:
            processor, model = self._load()
            kwargs: dict[str, Any] = {"images": [_rgb(i) for i in images],
                                      "return_tensors": "pt"}
            if self.prompt:
                kwargs["text"] = [self.prompt] * len(images)
            inputs = processor(**kwargs).to(self.device)
            # A model's own limit wins (the demo captioner's positions end at 16 tokens).
            limit = getattr(model.generation_config, "max_new_tokens", None) or MAX_NEW_TOKENS
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=min(limit, MAX_NEW_TOKENS),
                                     do_sample=False)
            texts = processor.batch_decode(out, skip_special_tokens=True)
        return [" ".join(t.replace(self.prompt, "", 1).split()) if self.prompt
                else " ".join(t.split()) for t in texts]

    def __call__(self, image: Image.Image) -> str:
        return self.caption_many([image])[0]
