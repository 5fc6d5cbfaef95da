"""Procedural images and captions for the demo captioner.

The captioner learns the demo image model's world (``diffusion/shapes.py``): one plain
shape on a plain background.  It knows every colour of the palette, the base model's and
the ones left for LoRAs (a user's training set of purple triangles must be captioned
"a purple triangle ..."), and every shape the shape drawer knows.

Two distributions, so the held-out eval measures generalisation and not memory:

- training: anti-aliased (drawn at 4x, box-filtered), square or mildly oblong images of
  32-96 px, the shape 30-75 % of the shorter side, colours jittered a little;
- held-out: hard-edged (drawn at 1x, no anti-aliasing), images of 24-320 px, the shape
  22-85 % of the shorter side, exact palette colours, a different RNG stream.

Every image is deterministic given its ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tools.demo_models.diffusion import shapes

PALETTE: dict[str, tuple[int, int, int]] = {**shapes.COLOURS, **shapes.EXTRA_COLOURS}
ALL_SHAPES: tuple[str, ...] = (*shapes.SHAPES, *shapes.EXTRA_SHAPES)
# A shape this close (RGB distance) to its background is not a fair picture of it: the
# demo scorer would not find it either (scoring.FOREGROUND_DISTANCE).
MIN_CONTRAST = 90.0
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


def caption(colour: str, shape: str, background: str) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape} on a {background} background"


def vocabulary() -> list[str]:
    words = ["a", "an", "on", "background", *PALETTE, *ALL_SHAPES]
    return [*SPECIALS, *dict.fromkeys(words)]


def _contrast(a: str, b: str) -> float:
    return float(np.linalg.norm(np.subtract(PALETTE[a], PALETTE[b], dtype=np.float32)))


def combos(shape_names: tuple[str, ...] = ALL_SHAPES) -> list[tuple[str, str, str]]:
    return [(c, s, b) for c in PALETTE for s in shape_names for b in PALETTE
            if c != b and _contrast(c, b) >= MIN_CONTRAST]


@dataclass(frozen=True)
class Style:
    """How a set of pictures is drawn."""

    min_side: int
    max_side: int
    oblong_p: float
    max_aspect: float
    min_frac: float
    max_frac: float
    supersample: int
    jitter: float


TRAIN = Style(min_side=32, max_side=96, oblong_p=0.3, max_aspect=1.4, min_frac=0.30,
              max_frac=0.75, supersample=4, jitter=12.0)
HELD_OUT = Style(min_side=24, max_side=320, oblong_p=0.3, max_aspect=1.25, min_frac=0.22,
                 max_frac=0.85, supersample=1, jitter=0.0)


def _mask(shape: str, width: int, height: int, cx: float, cy: float, size: float,
          supersample: int) -> np.ndarray:
    """Coverage in [0, 1], drawn by the demo model's own shape drawer; at ``supersample``
    1 every pixel is fully in or out (hard edges, unlike anything in training)."""
    big = Image.new("L", (width * supersample, height * supersample), 0)
    shapes.draw_shape(ImageDraw.Draw(big), shape, shapes.Placement(cx, cy, size), supersample)
    if supersample > 1:
        big = big.reduce(supersample)
    return np.asarray(big, dtype=np.float32) / 255.0


def draw(colour: str, shape: str, background: str, rng: np.random.Generator,
         style: Style = TRAIN) -> Image.Image:
    side = int(rng.integers(style.min_side, style.max_side + 1))
    width = height = side
    if rng.random() < style.oblong_p:
        aspect = float(np.exp(rng.uniform(-np.log(style.max_aspect), np.log(style.max_aspect))))
        if aspect > 1:
            width = max(style.min_side, round(side * aspect))
        else:
            height = max(style.min_side, round(side / aspect))
    short = min(width, height)
    size = rng.uniform(style.min_frac, style.max_frac) * short
    margin = size / 2 + 1
    cx = rng.uniform(margin, width - margin)
    cy = rng.uniform(margin, height - margin)
    alpha = _mask(shape, width, height, cx, cy, size, style.supersample)[..., None]
    fg = np.array(PALETTE[colour], dtype=np.float32)
    bg = np.array(PALETTE[background], dtype=np.float32)
    if style.jitter:
        fg = fg + rng.uniform(-style.jitter, style.jitter, 3)
        bg = bg + rng.uniform(-style.jitter, style.jitter, 3)
    pixels = np.clip(alpha * fg + (1.0 - alpha) * bg, 0, 255)
    return Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")


def sample(rng: np.random.Generator, count: int, pool: list[tuple[str, str, str]],
           style: Style = TRAIN) -> tuple[list[Image.Image], list[tuple[str, str, str]]]:
    picked = [pool[int(i)] for i in rng.integers(0, len(pool), size=count)]
    return [draw(*triple, rng, style) for triple in picked], picked
