"""Objective scores for "one plain shape on a plain background" images.

Used by the demo model's eval and by tests of other features (img2img, LoRA
training) to check what an image actually shows, e.g. that a LoRA taught
"purple" makes purple shapes. Works on any size; images are scored as RGB.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from tools.demo_models.diffusion import shapes

PALETTE: dict[str, tuple[int, int, int]] = {**shapes.COLOURS, **shapes.EXTRA_COLOURS}
# Pixels this far (RGB Euclidean) from the background colour count as foreground.
FOREGROUND_DISTANCE = 80.0


def _rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    return np.asarray(image, dtype=np.float32)[..., :3]


def nearest_colour(
    rgb: tuple[float, float, float] | np.ndarray,
    palette: dict[str, tuple[int, int, int]] | None = None,
) -> str:
    palette = palette or PALETTE
    names = list(palette)
    refs = np.array([palette[name] for name in names], dtype=np.float32)
    distances = np.linalg.norm(refs - np.asarray(rgb, dtype=np.float32), axis=1)
    return names[int(np.argmin(distances))]


def background_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    """Median colour of the border ring (the shape rarely covers most of it)."""
    pixels = _rgb(image)
    ring = max(1, min(pixels.shape[:2]) // 16)
    border = np.concatenate(
        [
            pixels[:ring].reshape(-1, 3),
            pixels[-ring:].reshape(-1, 3),
            pixels[:, :ring].reshape(-1, 3),
            pixels[:, -ring:].reshape(-1, 3),
        ]
    )
    return np.median(border, axis=0)


def background_colour(image: Image.Image | np.ndarray, palette=None) -> str:
    return nearest_colour(background_rgb(image), palette)


def foreground_mask(image: Image.Image | np.ndarray) -> np.ndarray:
    """Boolean mask of the largest blob that differs from the background colour."""
    pixels = _rgb(image)
    distance = np.linalg.norm(pixels - background_rgb(pixels), axis=-1)
    mask = (distance > FOREGROUND_DISTANCE).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def shape_rgb(image: Image.Image | np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Median colour inside the mask, ignoring its anti-aliased rim when possible."""
    if not mask.any():
        return None
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    pick = inner if inner.sum() >= 4 else mask
    return np.median(_rgb(image)[pick], axis=0)


def shape_colour(image: Image.Image | np.ndarray, mask: np.ndarray | None = None,
                 palette=None) -> str | None:
    mask = foreground_mask(image) if mask is None else mask
    rgb = shape_rgb(image, mask)
    return None if rgb is None else nearest_colour(rgb, palette)


def fill_ratio(mask: np.ndarray) -> float:
    """Mask area over its bounding-box area: square 1.0, circle ~0.79, triangle 0.5."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0.0
    box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    return float(mask.sum() / box)


# Fill ratio of each base shape's bounding box: the second, independent shape reading.
FILL_RATIOS: dict[str, float] = {"square": 1.0, "circle": float(np.pi / 4), "triangle": 0.5}


def shape_by_fill(mask: np.ndarray) -> str | None:
    """The base shape whose bounding-box fill ratio is nearest the mask's.

    Independent of ``classify_shape``: it reads only the area over the box, never where
    the pixels lie, so a four-lobed circle (fill ~0.85) or a square with pinched sides
    (~0.9) reads differently here than by template IoU."""
    if mask.sum() < 4:
        return None
    fill = fill_ratio(mask)
    return min(FILL_RATIOS, key=lambda name: abs(FILL_RATIOS[name] - fill))


def _template(shape: str, width: int, height: int) -> np.ndarray:
    size = 64
    mask = shapes._draw_mask(shape, shapes.Placement(size / 2, size / 2, size), size)
    resized = mask.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized) >= 128


def shape_scores(mask: np.ndarray, candidates: tuple[str, ...] = shapes.SHAPES) -> dict[str, float]:
    """IoU of the mask with each candidate shape stretched to the mask's bounding box."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 4:
        return dict.fromkeys(candidates, 0.0)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    crop = mask[y0:y1, x0:x1]
    scores = {}
    for shape in candidates:
        template = _template(shape, int(x1 - x0), int(y1 - y0))
        union = np.logical_or(crop, template).sum()
        scores[shape] = float(np.logical_and(crop, template).sum() / max(union, 1))
    return scores


def classify_shape(mask: np.ndarray, candidates: tuple[str, ...] = shapes.SHAPES) -> str | None:
    scores = shape_scores(mask, candidates)
    best = max(scores, key=lambda name: scores[name])
    return best if scores[best] > 0 else None


def enclosed_region(edges: Image.Image | np.ndarray) -> np.ndarray:
    """Pixels on or inside closed edges: everything a flood fill from the border misses."""
    edge = (_rgb(edges).max(axis=-1) > 127).astype(np.uint8)
    # Canny leaves one-pixel gaps (e.g. at a triangle's apex) that a fill would
    # leak through: close them, then fill.
    edge = cv2.morphologyEx(edge, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
    # A one-pixel frame around the image guarantees the fill starts outside the shape.
    canvas = np.pad(edge, 1).astype(np.uint8)
    flood = canvas.copy()
    fill_mask = np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, fill_mask, (0, 0), 2)
    return (flood != 2)[1:-1, 1:-1]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


@dataclass(frozen=True)
class Reading:
    """What an image shows, by the scores above."""

    colour: str | None
    shape: str | None
    background: str
    fill: float
    mask: np.ndarray
    # The second reading of the shape, by fill ratio alone (None: no shape found).
    shape_by_fill: str | None = None


def read_image(image: Image.Image | np.ndarray, candidates: tuple[str, ...] = shapes.SHAPES,
               palette=None) -> Reading:
    mask = foreground_mask(image)
    return Reading(
        colour=shape_colour(image, mask, palette),
        shape=classify_shape(mask, candidates) if mask.any() else None,
        background=background_colour(image, palette),
        fill=fill_ratio(mask),
        mask=mask,
        shape_by_fill=shape_by_fill(mask),
    )
