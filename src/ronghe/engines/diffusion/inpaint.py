"""Inpainting for UNets that diffusers' inpainting pipeline refuses.

``StableDiffusionInpaintPipeline`` takes UNets with 4 input channels (it keeps the unmasked
area by re-noising the source's latents after every step) or 9 (dedicated inpainting
checkpoints).  A UNet whose input is its own latent space of another width (the demo model's
3 channels) is refused, although the 4-channel method needs nothing but that.  ``LatentBlend``
is that method as a step callback on the model's txt2img pipeline: after each step, the kept
area's latents are replaced with the source's latents noised to the next timestep, exactly
as the pipeline does for 4 channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

# UNet input widths that diffusers' inpainting pipelines handle themselves.
PIPELINE_CHANNELS = (4, 9)


def pipeline_handles(unet: Any) -> bool:
    return int(unet.config.in_channels) in PIPELINE_CHANNELS


class LatentBlend:
    """Keeps the unmasked area on the source, one batch of images (one seed each)."""

    def __init__(self, pipe: Any, image: Image.Image, mask: Image.Image,
                 seeds: list[int]) -> None:
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
        self.noise = torch.cat([
            torch.randn(self.source.shape, generator=torch.Generator().manual_seed(s + 1))
            for s in seeds]).to(self.source)

    def __call__(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        timesteps = self.scheduler.timesteps
        kept = self.source.expand_as(latents)
        if step + 1 < len(timesteps):
            kept = self.scheduler.add_noise(kept, self.noise,
                                            torch.tensor([timesteps[step + 1]]))
        return (1 - self.mask) * kept + self.mask * latents
