"""Live previews: a small JPEG of what a running denoise looks like so far.

The picture is the scheduler's *predicted clean sample* of the current step (DDIM, Euler and
most schedulers compute it anyway; ``step`` is wrapped to keep it), so early previews show
the coming composition rather than noise.  Turned into RGB:

- 4-channel Stable Diffusion latents (sd15, sdxl): a fixed linear map per family (the
  factors ComfyUI and A1111 use for their "latent2rgb" previews), a few microseconds where
  running the VAE would cost a good share of a step on CPU;
- anything else (the demo model's 3-channel, full-resolution latents): its own VAE on the
  first image only, which for such small models costs less than a step.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

MAX_SIDE = 256
JPEG_QUALITY = 70
# (factors rows = latent channels, bias) per family.
LATENT_RGB: dict[str, tuple[list[list[float]], list[float]]] = {
    "sd15": ([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
              [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]], [0.0, 0.0, 0.0]),
    "sdxl": ([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
              [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
             [0.1084, -0.0175, -0.0011]),
}
LATENT_RGB["sd2"] = LATENT_RGB["sd15"]  # the same VAE
PreviewCallback = Callable[[bytes, int, int], None]


class CleanSampleTap:
    """Wraps ``scheduler.step`` for one call of a pipeline to keep the predicted x0."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.sample: torch.Tensor | None = None

    def __enter__(self) -> CleanSampleTap:
        original = self.scheduler.step

        def step(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if isinstance(out, tuple):
                self.sample = out[1] if len(out) > 1 else None
            else:
                self.sample = getattr(out, "pred_original_sample", None)
            return out

        self.scheduler.step = step
        return self

    def __exit__(self, *exc: object) -> None:
        # The wrapper was an instance attribute: removing it brings the class's step back.
        self.scheduler.__dict__.pop("step", None)


def to_image(pipe: Any, family: str, latents: torch.Tensor) -> Image.Image:
    x = latents[:1].detach().float()
    if family in LATENT_RGB and x.shape[1] == 4:
        factors, bias = LATENT_RGB[family]
        rgb = torch.einsum("bchw,cr->brhw", x, torch.tensor(factors)) + torch.tensor(
            bias).view(1, 3, 1, 1)
    else:
        vae = pipe.vae
        scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        rgb = vae.decode(x.to(vae.dtype) / scale).sample.float()
    pixels = ((rgb[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    image = Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), "RGB")
    longest = max(image.size)
    if longest != MAX_SIDE:
        scale = MAX_SIDE / longest
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        resample = Image.Resampling.NEAREST if longest < MAX_SIDE else Image.Resampling.BILINEAR
        image = image.resize(size, resample)
    return image


def jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


class Previewer:
    """Called after each step; makes a preview at most every ``every`` seconds."""

    def __init__(self, pipe: Any, family: str, every: float, send: PreviewCallback) -> None:
        self.pipe = pipe
        self.family = family
        self.every = every
        self.send = send
        self.last = time.monotonic()  # the first preview after one interval, not at step 1

    def __call__(self, tap: CleanSampleTap, latents: torch.Tensor) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        sample = tap.sample if tap.sample is not None else latents
        with torch.inference_mode():
            image = to_image(self.pipe, self.family, sample)
        self.send(jpeg(image), image.width, image.height)
