"""Control processors that need annotator weights (lineart models, openpose, DWPose).

They run through ``controlnet_aux`` (the ``annotators`` extra) on weights already on disk, in
a folder laid out like ``lllyasviel/Annotators`` (the files named in ``NEEDS``); Ronghe never
downloads them.  ``missing`` says, before a task is queued, what a server lacks, so a client
gets a clear error instead of a failed task.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from PIL import Image

SETTING = "controlnet_annotators_path"
EXTRA = "pip install 'ronghe[annotators]'"
_BODY, _HAND, _FACE = "body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"
# processor -> the weight files it reads, relative to the annotators folder.
NEEDS: dict[str, tuple[str, ...]] = {
    "lineart_realistic": ("sk_model.pth", "sk_model2.pth"),
    "lineart_coarse": ("sk_model.pth", "sk_model2.pth"),
    "lineart_anime": ("netG.pth",),
    "lineart_anime_denoise": ("netG.pth",),
    "openpose": (_BODY, _HAND, _FACE),
    "openpose_hand": (_BODY, _HAND, _FACE),
    "openpose_face": (_BODY, _HAND, _FACE),
    "openpose_faceonly": (_BODY, _HAND, _FACE),
    "openpose_full": (_BODY, _HAND, _FACE),
    "dw_openpose_full": ("dwpose/yolox_config.py", "dwpose/yolox_l.pth",
                         "dwpose/dwpose_config.py", "dwpose/dw-ll_ucoco_384.pth"),
}
_OPENPOSE = {"openpose": (True, False, False), "openpose_hand": (True, True, False),
             "openpose_face": (True, False, True), "openpose_faceonly": (False, False, True),
             "openpose_full": (True, True, True)}
_loaded: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def missing(processor: str, root: str) -> str | None:
    """Why ``processor`` cannot run with annotator folder ``root`` ('' = not configured),
    naming what to configure; None when it can."""
    files = NEEDS[processor]
    if not root:
        return (f"control_processor {processor!r} needs annotator weights ({', '.join(files)}); "
                f"this server has none: set {SETTING} to a folder holding them "
                "(see docs/configuration.md)")
    absent = [f for f in files if not (Path(root).expanduser() / f).is_file()]
    if absent:
        return (f"control_processor {processor!r} needs {', '.join(absent)} in {SETTING} "
                f"({root}), which this server lacks")
    module = "mmpose" if processor == "dw_openpose_full" else "controlnet_aux"
    if importlib.util.find_spec("controlnet_aux") is None or (
            importlib.util.find_spec(module) is None):
        return (f"control_processor {processor!r} needs the {module} package on this server "
                f"({EXTRA})")
    return None


def _detector(family: str, root: Path) -> Any:
    key = (family, str(root))
    with _lock:
        if key not in _loaded:
            import controlnet_aux as aux

            if family == "lineart":
                _loaded[key] = aux.LineartDetector.from_pretrained(root)
            elif family == "lineart_anime":
                _loaded[key] = aux.LineartAnimeDetector.from_pretrained(root)
            elif family == "openpose":
                _loaded[key] = aux.OpenposeDetector.from_pretrained(root)
            else:
                d = root / "dwpose"
                _loaded[key] = aux.DWposeDetector(
                    det_config=str(d / "yolox_config.py"), det_ckpt=str(d / "yolox_l.pth"),
                    pose_config=str(d / "dwpose_config.py"),
                    pose_ckpt=str(d / "dw-ll_ucoco_384.pth"))
        return _loaded[key]


def run(processor: str, source: Image.Image, size: tuple[int, int], root: str) -> Image.Image:
    problem = missing(processor, root)
    if problem:
        raise ValueError(problem)
    folder = Path(root).expanduser()
    image = source.convert("RGB")
    resolution = max(64, min(image.size))
    common = {"detect_resolution": resolution, "image_resolution": resolution}
    if processor in ("lineart_realistic", "lineart_coarse"):
        out = _detector("lineart", folder)(image, coarse=processor == "lineart_coarse", **common)
    elif processor.startswith("lineart_anime"):
        if processor == "lineart_anime_denoise":
            # sd-webui's denoise variant: smooth screentone and JPEG noise away first.
            from PIL import ImageFilter

            image = image.filter(ImageFilter.MedianFilter(5))
        out = _detector("lineart_anime", folder)(image, **common)
    elif processor in _OPENPOSE:
        body, hand, face = _OPENPOSE[processor]
        out = _detector("openpose", folder)(image, include_body=body, include_hand=hand,
                                            include_face=face, **common)
    else:
        out = _detector("dwpose", folder)(image, **common)
    return out.convert("RGB").resize(size, Image.Resampling.BICUBIC)
