"""Outpainting's geometry: the larger canvas, where the source sits on it, and the mask.

The canvas is the source's size times the ratio, each side rounded to the size step the
models take.  The new area is filled by repeating the source's edge pixels (so the VAE sees a
plausible continuation rather than a flat colour) and marked white in the mask: the area the
inpainting pipeline paints.  After generation the source's own pixels are put back
(``composite``), so the original region is exactly the upload, whatever the model did there.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# The later editions' names, row by row: "top", "middle", "bottom" x "left", "middle", "right".
POSITIONS = ("topleft", "topmiddle", "topright", "middleleft", "middle", "middleright",
             "bottomleft", "bottommiddle", "bottomright")
RATIOS = (1.25, 1.5, 2.0)


def canvas_size(width: int, height: int, ratio: float, step: int) -> tuple[int, int]:
    """Each side times ``ratio``, rounded to a multiple of ``step`` and never smaller than
    the source (so the source always fits)."""

    def side(n: int) -> int:
        grown = max(step, round(n * ratio / step) * step)
        return grown if grown >= n else -(-n // step) * step

    return side(width), side(height)


def offset(canvas: tuple[int, int], source: tuple[int, int], position: str) -> tuple[int, int]:
    """Top-left corner of the source on the canvas for one of ``POSITIONS``."""
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {', '.join(POSITIONS)}")
    row, col = divmod(POSITIONS.index(position), 3)
    free_x, free_y = canvas[0] - source[0], canvas[1] - source[1]
    return free_x * col // 2, free_y * row // 2


def extend(source: Image.Image, canvas: tuple[int, int],
           position: str) -> tuple[Image.Image, Image.Image, tuple[int, int]]:
    """(canvas image, mask: white where to paint, the source's corner on the canvas)."""
    rgb = np.asarray(source.convert("RGB"))
    x, y = offset(canvas, source.size, position)
    right, bottom = canvas[0] - source.width - x, canvas[1] - source.height - y
    padded = np.pad(rgb, ((y, bottom), (x, right), (0, 0)), mode="edge")
    mask = np.full((canvas[1], canvas[0]), 255, dtype=np.uint8)
    mask[y:y + source.height, x:x + source.width] = 0
    return Image.fromarray(padded), Image.fromarray(mask, mode="L"), (x, y)


def composite(painted: Image.Image, canvas: Image.Image, mask: Image.Image) -> Image.Image:
    """The painted image where the mask is white, the canvas (the source) where it is black."""
    if painted.size != canvas.size:
        painted = painted.resize(canvas.size, Image.Resampling.BICUBIC)
    return Image.composite(painted.convert("RGB"), canvas.convert("RGB"), mask)
