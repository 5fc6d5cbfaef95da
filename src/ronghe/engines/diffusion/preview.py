"""Live previews: a small JPEG of what a running denoise looks like so far.

The picture is the scheduler's *predicted clean sample* of the current step (DDIM, Euler and
most schedulers compute it anyway; ``step`` is wrapped to keep it), so early previews show
the coming composition rather than noise.  Turned into RGB:

- 4-channel Stable Diffusion latents (sd15, sdxl): a fixed linear map per family (the
  factors ComfyUI and A1111 use for their "latent2rgb" previews), a few microseconds where
  running the VAE would cost a good share of a step on CPU;
- anything else (the demo model's 3-channel, full-resolution latents; the transformer
  families' 16- and 32-channel latents): its own VAE on the first image only, which costs
  less than a step for small models and a fraction of one for large ones on a GPU.  FLUX's
  packed latents (2x2 patches as tokens) are unpacked first, as its pipeline does.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from ronghe.engines.diffusion.families import Family

MAX_SIDE = 256
JPEG_QUALITY = 70
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


def unpack(pipe: Any, latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Packed (batch, tokens, channels) latents as (batch, channels, h, w) VAE latents."""
    vae = pipe.vae
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    h, w = 2 * (size[1] // (factor * 2)), 2 * (size[0] // (factor * 2))
    if hasattr(vae, "bn"):  # FLUX.2: tokens in raster order, batch-normalised 2x2 patches
        x = latents.view(latents.shape[0], h // 2, w // 2, -1).permute(0, 3, 1, 2)
        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(x)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
        return pipe._unpatchify_latents(x * std.to(x) + mean)
    return pipe._unpack_latents(latents, size[1], size[0], factor)  # FLUX.1


def to_image(pipe: Any, family: Family, latents: torch.Tensor,
             size: tuple[int, int] = (0, 0)) -> Image.Image:
    x = latents[:1].detach().float()
    vae = pipe.vae
    packed = x.ndim == 3
    if packed:
        x = unpack(pipe, x, size)
    if family.latent_rgb is not None and x.shape[1] == len(family.latent_rgb[0]):
        factors, bias = family.latent_rgb
        rgb = torch.einsum("bchw,cr->brhw", x, torch.tensor(factors)) + torch.tensor(
            bias).view(1, 3, 1, 1)
    else:
        if not (packed and hasattr(vae, "bn")):  # FLUX.2's are denormalised by unpack
            scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
            shift = float(getattr(vae.config, "shift_factor", 0.0) or 0.0)
            x = x / scale + shift
        device = next(vae.parameters()).device
        rgb = vae.decode(x.to(device, vae.dtype)).sample.float().cpu()
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

    def __init__(self, pipe: Any, family: Family, size: tuple[int, int], every: float,
                 send: PreviewCallback) -> None:
        self.pipe = pipe
        self.family = family
        self.size = size
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
            image = to_image(self.pipe, self.family, sample, self.size)
        self.send(jpeg(image), image.width, image.height)
