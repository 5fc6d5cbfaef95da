"""Inpainting for UNets that diffusers' inpainting pipeline refuses, and A1111's latent fills.

``StableDiffusionInpaintPipeline`` takes UNets with 4 input channels (it keeps the unmasked
area by re-noising the source's latents after every step) or 9 (dedicated inpainting
checkpoints).  A UNet whose input is its own latent space of another width (the demo model's
3 channels) is refused, although the 4-channel method needs nothing but that.  ``LatentBlend``
is that method as a step callback: after each step, the kept area's latents are replaced with
the source's latents noised to the next timestep, exactly as the pipeline does for 4 channels.

It runs on the model's img2img pipeline, so ``strength`` decides where the schedule starts as
it does in A1111 and in the 4-channel pipeline; at strength 1 it runs on txt2img from pure
noise, as that pipeline does (``is_strength_max``).  The img2img pipeline's starting latents
are the source's noised to the first timestep; ``LatentBlend.starting`` swaps in its own
start for one call, which is how A1111's ``inpainting_fill`` 2 and 3 work: the masked area
starts from a fresh latent noise ("latent noise") or from zeros ("latent nothing") instead of
the source.  4-channel UNets take this path for those two fills only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ronghe.engines.diffusion.masking import LATENT_FILLS, LATENT_NOISE

# UNet input widths that diffusers' inpainting pipelines handle themselves.
PIPELINE_CHANNELS = (4, 9)
# A dedicated inpainting checkpoint's: latents, mask and masked image side by side.
MASK_INPUT_CHANNELS = 9


def pipeline_handles(unet: Any, fill: int) -> bool:
    """Whether diffusers' inpainting pipeline does this UNet's inpainting with ``fill`` (it
    has no latent fills)."""
    return fill not in LATENT_FILLS and int(unet.config.in_channels) in PIPELINE_CHANNELS


def blends(unet: Any) -> bool:
    """Whether the latent blend can drive this UNet: one that denoises its latents alone
    (an inpainting checkpoint wants the mask among its inputs)."""
    return int(unet.config.in_channels) != MASK_INPUT_CHANNELS


class LatentBlend:
    """Keeps the unmasked area on the source, one batch of images (one seed each)."""

    def __init__(self, pipe: Any, image: Image.Image, mask: Image.Image,
                 seeds: list[int], fill: int) -> None:
        self.scheduler = pipe.scheduler
        width, height = image.size
        pixels = pipe.image_processor.preprocess(image, height=height, width=width)
        vae = pipe.vae
        with torch.inference_mode():
            encoded = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        self.source = (encoded - shift) * vae.config.scaling_factor
        size = self.source.shape[-2:]
        held = torch.from_numpy(np.asarray(mask.convert("L")) >= 128).float()[None, None]
        # 1 where the model paints, at the latents' size (as the pipeline's mask processor).
        self.mask = torch.nn.functional.interpolate(held, size=size).to(self.source)
        # The noise the source is re-noised with: per image, from its own seed.
        self.noise = self._noise(seeds, 1)
        # Where img2img starts (before its noise): the source, its masked area emptied
        # ("latent nothing") or replaced by a noise of its own ("latent noise").
        self.start = self.source.expand_as(self.noise)
        if fill in LATENT_FILLS:
            painted = self._noise(seeds, 2) if fill == LATENT_NOISE else 0.0
            self.start = (1 - self.mask) * self.start + self.mask * painted

    def _noise(self, seeds: list[int], offset: int) -> torch.Tensor:
        return torch.cat([
            torch.randn(self.source.shape,
                        generator=torch.Generator().manual_seed(s + offset))
            for s in seeds]).to(self.source)

    def __call__(self, pipe: Any, latents: torch.Tensor, step: int) -> torch.Tensor:
        timesteps = self.scheduler.timesteps
        # img2img runs the schedule's tail: ``step`` counts from where it began.
        step += len(timesteps) - pipe.num_timesteps
        kept = self.source.expand_as(latents)
        if step + 1 < len(timesteps):
            kept = self.scheduler.add_noise(kept, self.noise,
                                            torch.tensor([timesteps[step + 1]]))
        return (1 - self.mask) * kept + self.mask * latents

    @contextmanager
    def starting(self, pipe: Any) -> Iterator[None]:
        """The img2img pipeline ``pipe`` starts from ``self.start`` (noised as the pipeline
        would: its own noise from the request's generators) for the calls inside."""

        def prepare_latents(image: Any, timestep: torch.Tensor, batch_size: int,
                            num_images_per_prompt: int, dtype: torch.dtype,
                            device: torch.device, generator: Any = None,
                            **_: Any) -> torch.Tensor:
            start = self.start.to(device=device, dtype=dtype)
            noise = randn_tensor(start.shape, generator=generator, device=device,
                                 dtype=dtype)
            return pipe.scheduler.add_noise(start, noise, timestep)

        # An instance attribute shadows the method for this call only; the pipeline is the
        # cache's, used under its lock, and gets its own method back after.
        pipe.prepare_latents = prepare_latents
        try:
            yield
        finally:
            del pipe.prepare_latents
