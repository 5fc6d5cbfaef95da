"""Upscaling: AUTOMATIC1111's hires fix, and pictures made larger by an upscaler.

An upscaler is one of A1111's names:

- ``Lanczos`` and ``Nearest``: PIL's resampling;
- an upscaler model's name (``upscalers.py``: ESRGAN, Real-ESRGAN, SwinIR, HAT … through
  spandrel), run in tiles so memory stays bounded whatever the picture's size: each tile
  is upscaled with a margin of its neighbours' pixels around it, and only its own area is
  kept, so no seam shows.  A 2x model asked for 3x runs twice and is resized down, as A1111
  does (at most three runs);
- the ``Latent`` variants (hires fix only): the first pass's images are upscaled in the
  model's latent space with torch's ``interpolate`` (bilinear, bicubic, nearest, with or
  without antialiasing, as A1111 maps them).  diffusers' img2img takes pixels, so the
  latents are encoded with the model's VAE, upscaled and decoded; img2img encodes them
  again (a VAE round trip more than A1111, which keeps the latents; the picture it starts
  from is the same).

The hires fix (``hires_fix``): the first pass renders at the requested size, each image is
upscaled by ``hr_scale``, then a second img2img pass at the larger size adds the detail the
first could not hold (``hr_denoising_strength`` of ``hr_second_pass_steps``), each image from
its own seed.  A model rendering at a small fixed size (the demo, ``native_resolution``)
runs its second pass at ``hr_scale`` times its render size, and the result is resized to
the delivered size as for any request.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ronghe.engines.diffusion import upscalers
from ronghe.engines.diffusion.families import Family

# A1111's latent upscale modes: name -> (torch interpolate mode, antialias).
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
RESAMPLERS = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}
BUILT_IN = (*LATENT_MODES, *RESAMPLERS)
# Input pixels per tile side, and the margin of context read around each tile.
TILE = 192
OVERLAP = 16
MAX_MODEL_RUNS = 3
MIN_SCALE, MAX_SCALE = 1.0, 4.0
DEFAULT_UPSCALER = "Latent"
DEFAULT_DENOISE = 0.7
# (tiles done, tiles in all); may raise to stop.
TileCallback = Callable[[int, int], None]
StepCallback = Callable[[int, int], None]


def built_in(name: str) -> str | None:
    """A built-in upscaler's own spelling for ``name`` (case does not matter), or None."""
    wanted = name.strip().lower()
    return next((n for n in BUILT_IN if n.lower() == wanted), None)


def is_latent(name: str) -> bool:
    return name in LATENT_MODES


def latent_applies(family: Family) -> bool:
    """Whether the Latent upscalers work for a family: the UNet families, whose VAE works
    on plain (batch, channels, h, w) latents (the transformer families pack theirs)."""
    return family.is_sd


def scaled(width: int, height: int, scale: float, step: int = 8) -> tuple[int, int]:
    """``width x height`` times ``scale``, each side rounded to a multiple of ``step``."""
    def side(value: int) -> int:
        return max(step, round(value * scale / step) * step)

    return side(width), side(height)


@dataclass(frozen=True)
class HiresFix:
    """``GenerationRequest.hires``: how the first pass is upscaled and painted over again."""

    scale: float
    # A built-in name (Latent …, Lanczos, Nearest) or an upscaler model's.
    upscaler: str = DEFAULT_UPSCALER
    # Steps of the second pass; 0: the first pass's.
    steps: int = 0
    denoise: float = DEFAULT_DENOISE
    # The upscaler model's file (for a model's name), found by the task where it runs.
    model_path: Path | None = None
    # The model's size step: the delivered sides are multiples of it.
    step: int = 8

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The delivered size of a ``width x height`` request."""
        return scaled(width, height, self.scale, self.step)

    def second_steps(self, first_steps: int) -> int:
        return self.steps or first_steps

    def denoised(self, first_steps: int) -> int:
        """Steps the second pass runs per image (img2img runs the last ``denoise`` share)."""
        return int(self.second_steps(first_steps) * self.denoise)


# --- pixel upscaling


def _tensor(image: Image.Image) -> torch.Tensor:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)


def tiled(model: Any, image: Image.Image, tile: int = TILE, overlap: int = OVERLAP,
          on_tile: TileCallback | None = None) -> Image.Image:
    """One run of a spandrel model over ``image``, a tile at a time: memory holds the
    output picture and one tile's activations, never the whole picture's."""
    scale = int(model.scale)
    source = _tensor(image)
    height, width = source.shape[-2:]
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    starts = [(y, x) for y in range(0, height, tile) for x in range(0, width, tile)]
    device = getattr(model, "device", torch.device("cpu"))
    for done, (y, x) in enumerate(starts, 1):
        y0, y1 = max(0, y - overlap), min(height, y + tile + overlap)
        x0, x1 = max(0, x - overlap), min(width, x + tile + overlap)
        patch = source[:, :, y0:y1, x0:x1]
        pad_w, pad_h = model.size_requirements.get_padding(x1 - x0, y1 - y0)
        if pad_w or pad_h:  # the model wants a minimum or a multiple: pad, then crop
            patch = torch.nn.functional.pad(patch, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.inference_mode():
            result = model(patch.to(device)).float().cpu()
        keep_h, keep_w = min(height, y + tile) - y, min(width, x + tile) - x
        top, left = (y - y0) * scale, (x - x0) * scale
        own = result[0, :, top:top + keep_h * scale, left:left + keep_w * scale]
        out[y * scale:(y + keep_h) * scale, x * scale:(x + keep_w) * scale] = (
            own.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy())
        if on_tile is not None:
            on_tile(done, len(starts))
    return Image.fromarray(out)


def model_runs(model_scale: int, source: tuple[int, int], target: tuple[int, int]) -> int:
    """How many runs of a ``model_scale`` model reach ``target`` (A1111: at most three;
    a 1x model runs once)."""
    if model_scale <= 1:
        return 1
    need = max(target[0] / source[0], target[1] / source[1])
    return max(1, min(MAX_MODEL_RUNS, math.ceil(math.log(need, model_scale) - 1e-9)))


def upscale(image: Image.Image, size: tuple[int, int], upscaler: str,
            model_path: Path | None = None, device: str = "cpu", tile: int = TILE,
            on_tile: TileCallback | None = None) -> Image.Image:
    """``image`` at ``size`` through a resampler or an upscaler model (then Lanczos to the
    exact size, when the model's own scale overshoots)."""
    resample = RESAMPLERS.get(upscaler)
    if resample is not None:
        return image.convert("RGB").resize(size, resample)
    if model_path is None:
        raise ValueError(f"upscaler {upscaler!r} is neither built in nor a model file")
    model = upscalers.load(model_path, device)
    runs = model_runs(int(model.scale), image.size, size)
    current = image.convert("RGB")
    for run in range(runs):
        def report(done: int, total: int, run: int = run) -> None:
            if on_tile is not None:
                on_tile(run * total + done, runs * total)

        current = tiled(model, current, tile, OVERLAP, report)
    if current.size != size:
        current = current.resize(size, Image.Resampling.LANCZOS)
    return current


# --- latent upscaling


def latent_upscale(pipe: Any, images: list[Image.Image], size: tuple[int, int],
                   upscaler: str) -> list[Image.Image]:
    """The images upscaled in the pipeline's latent space to ``size`` pixels, as pictures."""
    mode, antialias = LATENT_MODES[upscaler]
    vae = pipe.vae
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    processor = pipe.image_processor
    # SDXL's VAE overflows in float16 (its pipelines upcast it the same way).
    upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    dtype = torch.float32 if upcast else vae.dtype
    if upcast:
        vae.to(torch.float32)
    out = []
    try:
        for image in images:
            pixels = processor.preprocess(image).to(vae.device, dtype)
            with torch.inference_mode():
                latents = vae.encode(pixels).latent_dist.mode()
                latents = torch.nn.functional.interpolate(
                    latents, size=(size[1] // factor, size[0] // factor), mode=mode,
                    **({"antialias": True} if antialias else {}))
                decoded = vae.decode(latents).sample
            out.append(processor.postprocess(decoded.float(), output_type="pil")[0])
    finally:
        if upcast:
            vae.to(torch.float16)
    return out


# --- the hires fix

# (second-pass request, the picture it starts from, its size, step callback)
#   -> (images, steps each): one img2img run, as the engine renders any request.
Render = Callable[[Any, Image.Image, tuple[int, int], StepCallback | None],
                  tuple[list[Image.Image], int]]


def first_pass_progress(req: Any, on_step: StepCallback | None) -> StepCallback | None:
    """The first pass's step callback: its steps count against both passes' total."""
    hires: HiresFix | None = req.hires
    if hires is None or on_step is None:
        return on_step
    extra = hires.denoised(req.steps) * len(req.seeds)

    def step(done: int, total: int) -> None:
        on_step(done, total + extra)

    return step


def hires_fix(req: Any, pipe: Any, images: list[Image.Image], size: tuple[int, int],
              multiple: int, first_steps: int, render: Render,
              on_step: StepCallback | None, device: str = "cpu"
              ) -> tuple[list[Image.Image], tuple[int, int], int]:
    """The first pass's ``images`` (rendered at ``size``) upscaled and painted over again:
    (images, their size, steps each image ran in the second pass).  ``req`` is the
    ``GenerationRequest``, ``pipe`` the model's img2img pipeline."""
    hires: HiresFix = req.hires
    exact = size == (req.width, req.height)
    # A model rendering at its own small size paints hr_scale times that size.
    at = hires.size(req.width, req.height) if exact else scaled(*size, hires.scale, multiple)
    if is_latent(hires.upscaler):
        started = latent_upscale(pipe, images, at, hires.upscaler)
    else:
        started = [upscale(image, at, hires.upscaler, hires.model_path, device)
                   for image in images]
    steps = hires.second_steps(req.steps)
    each = hires.denoised(req.steps)
    if each < 1:  # nothing to denoise: the upscaled first pass is the result
        return started, at, 0
    before = first_steps * len(req.seeds)
    total = before + each * len(req.seeds)
    out: list[Image.Image] = []
    for i, (image, seed) in enumerate(zip(started, req.seeds, strict=True)):
        second = dataclasses.replace(req, seeds=[seed], steps=steps, strength=hires.denoise,
                                     init_image=None, mask_image=None, controls=[],
                                     hires=None)

        def step(done: int, _total: int, offset: int = before + i * each) -> None:
            if on_step is not None:
                on_step(offset + done, total)

        painted, _ = render(second, image, at, step)
        out.extend(painted)
    return out, at, each
