"""Turning a dataset's images into the tensors the trainer caches latents from.

Aspect-ratio buckets (kohya's and SimpleTuner's "bucketing"): a non-square image is not
cropped to a square, it is scaled to the bucket of the nearest aspect ratio (a fixed set,
each about ``resolution``² pixels) and trained at that size, so a portrait keeps its head and
feet.  Every batch is drawn from one bucket, since a batch tensor has one size.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

# width / height of the buckets: square, 4:3, 3:2 and 16:9, each way round.
ASPECTS: tuple[float, ...] = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16)


def bucket_sizes(resolution: int, small_step: int = 8) -> list[tuple[int, int]]:
    """(width, height) of each bucket: about resolution² pixels, sides multiples of 64
    (``small_step`` for tiny models: 8, or 16 where the latents are packed in 2×2 patches),
    so SD's 8x VAE downsampling and the UNet's 3 halvings divide them."""
    step = 64 if resolution >= 256 else small_step
    sizes: dict[tuple[int, int], None] = {}
    for aspect in ASPECTS:
        width = max(step, round(resolution * math.sqrt(aspect) / step) * step)
        height = max(step, round(resolution / math.sqrt(aspect) / step) * step)
        sizes[(width, height)] = None
    return list(sizes)


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    ratio = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), b))


def to_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """RGB, scaled to cover width x height, centre-cropped (transparency becomes white)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent areas become white rather than whatever colour they hide.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    image = image.convert("RGB")
    cover_w, cover_h, left, top = cover_box(image.width, image.height, width, height)
    image = image.resize((cover_w, cover_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image.crop((left, top, left + width, top + height))


def cover_box(image_w: int, image_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(cover width, cover height, left, top): the size an image is scaled to so that it
    covers width x height, and the corner of the centred crop (SDXL's crop conditioning)."""
    scale = max(width / image_w, height / image_h)
    cover_w = max(width, round(image_w * scale))
    cover_h = max(height, round(image_h * scale))
    return cover_w, cover_h, (cover_w - width) // 2, (cover_h - height) // 2


def to_square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side scaled to ``size``, centre-cropped: the usual square SD framing."""
    return to_size(image, size, size)


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """NCHW in [-1, 1], as SD VAEs expect."""
    array = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0
