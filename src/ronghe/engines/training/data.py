"""Turning a dataset's images into the square tensors the trainer caches latents from."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_square(image: Image.Image, size: int) -> Image.Image:
    """RGB, shorter side scaled to ``size``, centre-cropped: the usual SD training framing."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent areas become white rather than whatever colour they hide.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    image = image.convert("RGB")
    scale = size / min(image.size)
    width = max(size, round(image.width * scale))
    height = max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """NCHW in [-1, 1], as SD VAEs expect."""
    array = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0
