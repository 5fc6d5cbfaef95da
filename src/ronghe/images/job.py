"""The image job: everything an image task renders, fixed and typed when it is submitted.

``ronghe.images.submit`` makes one from a request (checking models, LoRAs, ControlNets and
uploads); the task row stores ``ImageJob.to_params()``; the worker (``ronghe.tasks.images``)
and the listings read ``ImageJob.from_params``.  A re-run after a crash renders the same
images: the seed is chosen here, not by the worker.

What the worker decides while it runs (add_prompt's prompt) is not part of the job: it goes
to the task's memo (``ronghe.jobs.view.MEMO``).  Like ``TrainJob``, parts added later have
defaults, so tasks stored before them still load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Any

from ronghe.webhooks.request import PARAM as WEBHOOK
from ronghe.webhooks.request import Webhook

# Canny thresholds when a unit does not set them (the spec's defaults).
DEFAULT_LOW = 100
DEFAULT_HIGH = 200


@cache
def _names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = _names(cls)
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Control:
    """One ControlNet unit: its control image (an upload) and how it steers."""

    cn: str
    file_id: str
    processor: str
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    low: int = DEFAULT_LOW
    high: int = DEFAULT_HIGH
    # tile processors: the control image is shrunk by this factor first.
    rate: int = 1
    # The annotator folder of a processor that needs weights; "" for weight-free ones.
    annotators: str = ""

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Control:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Lora:
    """A LoRA merged into the model, by catalog id."""

    id: int
    name: str
    weight: float

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Lora:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Outpaint:
    """outpaint_config: the upload goes onto a canvas ``outpaint_ratio`` times its size, at
    ``align_position``; the job's width and height are that canvas."""

    file_id: str
    outpaint_ratio: float
    align_position: str
    # The upload's size when it was submitted.
    source_size: tuple[int, int]

    def to_params(self) -> dict[str, Any]:
        return {**asdict(self), "source_size": list(self.source_size)}

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Outpaint:
        width, height = data["source_size"]
        return cls(data["file_id"], data["outpaint_ratio"], data["align_position"],
                   (int(width), int(height)))


@dataclass(frozen=True)
class Mask:
    """An inpainting mask (an upload): white where the model paints over the init image,
    black where the init image is kept; how it is applied (``engines.diffusion.masking``,
    A1111's names and defaults)."""

    file_id: str
    # Gaussian feathering of the mask's edge, in pixels (sigma).
    blur: int = 4
    # Paint the black area instead of the white.
    invert: bool = False
    # Paint only the mask's bounding box (+ padding) at the task's size, then paste it back
    # into the init image (which keeps its own size).
    only_masked: bool = False
    padding: int = 32
    # What the painted area starts from: 0 fill (the colours around it), 1 original.
    fill: int = 1

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Mask:
        return cls(**_known(cls, {**data, "file_id": str(data["file_id"])}))


@dataclass(frozen=True)
class Hires:
    """A1111's hires fix: the first pass at the job's width x height, upscaled ``scale``
    times by ``upscaler`` (a built-in name or an upscaler model's), then painted over again
    by an img2img pass of ``steps`` (0: the job's) at ``denoise``."""

    scale: float
    upscaler: str
    steps: int
    denoise: float

    @classmethod
    def from_params(cls, data: dict[str, Any]) -> Hires:
        return cls(float(data["scale"]), str(data["upscaler"]), int(data["steps"]),
                   float(data["denoise"]))


@dataclass(frozen=True)
class ImageJob:
    """What an image task renders; ``to_params`` is its task row's params."""

    # The registry model that renders it (LoRAs implied by a trained model's name are in
    # ``loras``), and the names the client sent, shown back by the listing.
    model: str
    prompt: str
    neg_prompt: str
    n_images: int
    scale: float
    # The first image's seed; image i uses seed + i.
    seed: int
    width: int
    height: int
    steps: int
    strength: float
    # txt2img, img2img, controlnet, outpaint or inpaint.
    task_type: str
    model_name: str = ""
    versionid: int | str = ""
    init_file_id: str | None = None
    controls: tuple[Control, ...] = ()
    loras: tuple[Lora, ...] = ()
    add_prompt: bool = False
    outpaint: Outpaint | None = None
    mask: Mask | None = None
    # Stored beside the input, where the outbox reads it (``webhooks.request.PARAM``).
    webhook: Webhook | None = None
    # The stored images' format: jpeg, png or webp.
    output_format: str = "jpeg"
    # The hires fix; the delivered images are width x height times its scale.
    hires: Hires | None = None
    # A1111's sampler and schedule type, checked for the model's family; "": its own.
    sampler_name: str = ""
    scheduler: str = ""

    @property
    def file_ids(self) -> list[str]:
        """The uploads the job reads: init image, control images, outpaint source, mask."""
        ids = [self.init_file_id] if self.init_file_id else []
        ids += [c.file_id for c in self.controls if c.file_id]
        if self.outpaint is not None:
            ids.append(self.outpaint.file_id)
        if self.mask is not None:
            ids.append(self.mask.file_id)
        return ids

    def to_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model, "model_name": self.model_name, "prompt": self.prompt,
            "neg_prompt": self.neg_prompt, "n_images": self.n_images, "scale": self.scale,
            "seed": self.seed, "width": self.width, "height": self.height,
            "steps": self.steps, "strength": self.strength,
            "init_file_id": self.init_file_id,
            "controls": [asdict(c) for c in self.controls],
            "loras": [asdict(x) for x in self.loras],
            "add_prompt": self.add_prompt, "task_type": self.task_type,
            "outpaint": self.outpaint.to_params() if self.outpaint else None,
            "versionid": self.versionid,
        }
        # Left out when absent, so a row holds only what was asked for.
        if self.mask is not None:
            params["mask"] = asdict(self.mask)
        if self.webhook is not None:
            params[WEBHOOK] = self.webhook.to_param()
        if self.output_format != "jpeg":
            params["output_format"] = self.output_format
        if self.hires is not None:
            params["hires"] = asdict(self.hires)
        if self.sampler_name:
            params.update(sampler_name=self.sampler_name, scheduler=self.scheduler)
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ImageJob:
        """The job of a stored task; keys it does not know (the memo, or decisions stored
        at the top level before the memo existed) are not part of it."""
        p = params
        outpaint, mask, hires = p.get("outpaint"), p.get("mask"), p.get("hires")
        return cls(
            model=p["model"], prompt=p["prompt"], neg_prompt=p["neg_prompt"],
            n_images=p["n_images"], scale=p["scale"], seed=p["seed"], width=p["width"],
            height=p["height"], steps=p["steps"], strength=p["strength"],
            task_type=p["task_type"], model_name=p.get("model_name", ""),
            versionid=p.get("versionid", ""), init_file_id=p.get("init_file_id"),
            controls=tuple(Control.from_params(c) for c in p.get("controls", [])),
            loras=tuple(Lora.from_params(x) for x in p.get("loras", [])),
            add_prompt=bool(p.get("add_prompt", False)),
            outpaint=Outpaint.from_params(outpaint) if outpaint else None,
            mask=Mask.from_params(mask) if mask else None,
            webhook=Webhook.from_params(p),
            output_format=str(p.get("output_format", "jpeg")),
            hires=Hires.from_params(hires) if hires else None,
            sampler_name=str(p.get("sampler_name", "")), scheduler=str(p.get("scheduler", "")),
        )


@dataclass(frozen=True)
class CaptionJob:
    """img2txt: the upload to caption."""

    file_id: str

    def to_params(self) -> dict[str, Any]:
        return {"file_id": self.file_id}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CaptionJob:
        return cls(str(params["file_id"]))


@dataclass(frozen=True)
class UpscaleJob:
    """The upscale task: one of the user's images (an upload or an output) made ``scale``
    times larger by ``upscaler`` (Lanczos, Nearest or an upscaler model's name)."""

    file_id: str
    upscaler: str
    scale: float
    # The source's size when it was submitted, and the delivered size.
    source_size: tuple[int, int]
    width: int
    height: int
    # listings and task_result show it beside image tasks' types.
    task_type: str = "upscale"

    def to_params(self) -> dict[str, Any]:
        return {**asdict(self), "source_size": list(self.source_size)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> UpscaleJob:
        width, height = params["source_size"]
        return cls(str(params["file_id"]), str(params["upscaler"]), float(params["scale"]),
                   (int(width), int(height)), int(params["width"]), int(params["height"]))
