"""ControlNet conditioning images: the client's image turned into what the ControlNet reads."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# control_processor values; "none" means the image already is the control map.
PROCESSORS = ("canny", "none")
CANNY_LOW, CANNY_HIGH = 100, 200


def canny_map(image: Image.Image, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> Image.Image:
    """White edges on black, RGB.  Edges are found per colour channel and combined, because
    some colour pairs (red on green) are nearly the same grey and a grey-only canny would
    lose their outline."""
    pixels = np.asarray(image.convert("RGB"))
    edges = np.max([cv2.Canny(np.ascontiguousarray(pixels[..., c]), low, high)
                    for c in range(3)], axis=0)
    return Image.fromarray(edges).convert("RGB")


def control_image(source: Image.Image, size: tuple[int, int], processor: str = "canny",
                  low: int = CANNY_LOW, high: int = CANNY_HIGH) -> Image.Image:
    """The control map at the render size.  The source is resized *before* edge detection,
    so edges stay one pixel wide at the resolution the ControlNet works at."""
    resized = source.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    if processor == "canny":
        return canny_map(resized, low, high)
    if processor == "none":
        return resized
    raise ValueError(f"unknown control processor {processor!r}")
