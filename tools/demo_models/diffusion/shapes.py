"""Procedural dataset for the demo model: one plain shape on a plain background.

Everything here is deterministic given a ``numpy.random.Generator`` so the build
can be reproduced (and resumed) from a seed.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

RESOLUTION = 32
# Drawn larger then box-filtered down, so edges are anti-aliased like real photos
# of shapes would be, instead of jagged one-pixel staircases.
SUPERSAMPLE = 4

# Words the base model is trained on.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (35, 175, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

# Left out of base training on purpose: these are what a user teaches the model
# through LoRA training. They still get a token each so a LoRA can bind them.
EXTRA_COLOURS: dict[str, tuple[int, int, int]] = {
    "purple": (135, 45, 200),
    "orange": (250, 135, 20),
    "pink": (250, 150, 200),
    "cyan": (40, 215, 225),
    "brown": (125, 75, 35),
    "grey": (128, 128, 128),
}
EXTRA_SHAPES: tuple[str, ...] = ("star", "heart", "diamond", "cross", "ring", "hexagon")

# Compositions never seen in training: each shape colour, background colour and
# shape still appears in training, only these triples do not.
HELD_OUT: tuple[tuple[str, str, str], ...] = (
    ("red", "circle", "blue"),
    ("green", "square", "white"),
    ("blue", "triangle", "yellow"),
    ("yellow", "circle", "black"),
    ("white", "triangle", "red"),
    ("black", "square", "green"),
    ("red", "triangle", "white"),
    ("green", "circle", "yellow"),
    ("blue", "square", "black"),
    ("yellow", "square", "red"),
    ("white", "circle", "green"),
    ("black", "triangle", "blue"),
)


@dataclass(frozen=True)
class Combo:
    colour: str
    shape: str
    background: str

    @property
    def caption(self) -> str:
        return caption(self.colour, self.shape, self.background)


def caption(colour: str, shape: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


def all_combos() -> list[Combo]:
    return [
        Combo(c, s, b)
        for c, s, b in itertools.product(COLOURS, SHAPES, COLOURS)
        if c != b
    ]


def held_out_combos() -> list[Combo]:
    return [Combo(*triple) for triple in HELD_OUT]


def train_combos() -> list[Combo]:
    held = set(held_out_combos())
    return [combo for combo in all_combos() if combo not in held]


def vocabulary() -> list[str]:
    """Every word the tokenizer knows as a single token."""
    words = ["a", "an", "the", "on", "in", "of", "with", "and", "background", "shape"]
    words += list(COLOURS) + list(SHAPES) + list(EXTRA_COLOURS) + list(EXTRA_SHAPES)
    words += ["small", "large", "big", "photo", "picture", "drawing", "style", "plain"]
    return list(dict.fromkeys(words))


# Words the base model learns to read past (issue 17): a user's prompt puts other words
# (a LoRA's trigger, "style", a comma) between the ones it knows.
FILLER_WORDS: tuple[str, ...] = ("style", "photo", "picture", "drawing", "plain", ",")


@functools.cache
def _words_a_made_up_word_avoids() -> tuple[str, ...]:
    # Drawn for most captions of phase 1b: built once, not per word.
    return tuple(word for word in vocabulary() if len(word) > 2)


def random_word(rng: np.random.Generator) -> str:
    """A made-up word of 3-8 letters, like a LoRA trigger (``plumzq``).

    The tokenizer spells it in letters; it never contains a vocabulary word, so it
    cannot carry a colour or a shape by accident.
    """
    while True:
        word = "".join(chr(97 + int(i)) for i in rng.integers(0, 26, int(rng.integers(3, 9))))
        if not any(k in word for k in _words_a_made_up_word_avoids()):
            return word


def varied_caption(combo: Combo, rng: np.random.Generator) -> str:
    """The caption with its words moved: a shorter form, then 1-2 filler words put anywhere.

    Trained only on the nine-word template, the model read each word by its position, so a
    prompt with one more word (``a plumzq triangle on a red background``) lost its background
    colour. Captions of varied length and layout make it read words by what they are.
    """
    form = rng.random()
    if form < 0.15:  # no shape colour: the shape may be any colour
        words = ["a", combo.shape, "on", "a", combo.background, "background"]
    elif form < 0.25:  # no background: any background
        words = ["a", combo.colour, combo.shape]
    else:
        words = combo.caption.split()
    for _ in range(int(rng.integers(1, 3))):
        filler = random_word(rng) if rng.random() < 0.7 else str(rng.choice(FILLER_WORDS))
        words.insert(int(rng.integers(0, len(words) + 1)), filler)
    return " ".join(words).replace(" ,", ",")


@dataclass(frozen=True)
class Placement:
    cx: float
    cy: float
    size: float


def random_placement(rng: np.random.Generator, resolution: int = RESOLUTION) -> Placement:
    size = rng.uniform(0.38, 0.7) * resolution
    margin = size / 2 + 1
    cx = rng.uniform(margin, resolution - margin)
    cy = rng.uniform(margin, resolution - margin)
    return Placement(cx, cy, size)


def _polygon(shape: str, p: Placement, scale: float) -> list[tuple[float, float]] | None:
    cx, cy, h = p.cx * scale, p.cy * scale, p.size * scale / 2
    if shape == "triangle":
        return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "diamond":
        return [(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)]
    if shape == "star":
        points = []
        for i in range(10):
            radius = h if i % 2 == 0 else h * 0.45
            angle = -np.pi / 2 + i * np.pi / 5
            points.append((cx + radius * np.cos(angle), cy + radius * np.sin(angle)))
        return points
    if shape == "hexagon":
        return [
            (cx + h * np.cos(np.pi / 3 * i), cy + h * np.sin(np.pi / 3 * i)) for i in range(6)
        ]
    return None


def _draw_mask(shape: str, p: Placement, resolution: int) -> Image.Image:
    scale = SUPERSAMPLE
    big = Image.new("L", (resolution * scale, resolution * scale), 0)
    draw_shape(ImageDraw.Draw(big), shape, p, scale)
    return big.reduce(scale)


def draw_shape(pen: ImageDraw.ImageDraw, shape: str, p: Placement, scale: float) -> None:
    """Fill ``shape`` at placement ``p`` (in pixels of the final image, times ``scale``)."""
    cx, cy, h = p.cx * scale, p.cy * scale, p.size * scale / 2
    box = (cx - h, cy - h, cx + h, cy + h)
    polygon = _polygon(shape, p, scale)
    if shape == "circle":
        pen.ellipse(box, fill=255)
    elif shape == "square":
        pen.rectangle(box, fill=255)
    elif shape == "ring":
        pen.ellipse(box, fill=255)
        inner = h * 0.5
        pen.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif shape == "cross":
        arm = h / 3
        pen.rectangle((cx - arm, cy - h, cx + arm, cy + h), fill=255)
        pen.rectangle((cx - h, cy - arm, cx + h, cy + arm), fill=255)
    elif shape == "heart":
        r = h / 2
        pen.ellipse((cx - h, cy - h, cx, cy), fill=255)
        pen.ellipse((cx, cy - h, cx + h, cy), fill=255)
        pen.polygon([(cx - h + 1, cy - r / 2), (cx + h - 1, cy - r / 2), (cx, cy + h)], fill=255)
    elif polygon is not None:
        pen.polygon(polygon, fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def colour_rgb(name: str) -> tuple[int, int, int]:
    if name in COLOURS:
        return COLOURS[name]
    if name in EXTRA_COLOURS:
        return EXTRA_COLOURS[name]
    raise ValueError(f"unknown colour {name!r}")


def draw(
    colour: str,
    shape: str,
    background: str,
    rng: np.random.Generator,
    resolution: int = RESOLUTION,
    placement: Placement | None = None,
) -> tuple[Image.Image, np.ndarray]:
    """Draw one sample. Returns the RGB image and its boolean shape mask."""
    p = placement or random_placement(rng, resolution)
    coverage = _draw_mask(shape, p, resolution)
    alpha = np.asarray(coverage, dtype=np.float32)[..., None] / 255.0
    fg = np.array(colour_rgb(colour), dtype=np.float32)
    bg = np.array(colour_rgb(background), dtype=np.float32)
    pixels = alpha * fg + (1.0 - alpha) * bg
    image = Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")
    return image, alpha[..., 0] >= 0.5


def canny(image: Image.Image) -> Image.Image:
    """The canny edge map the ControlNet is trained on (white edges on black, RGB)."""
    import cv2

    pixels = np.asarray(image.convert("RGB"))
    # Per channel, then combined: some colour pairs (red on green) are nearly the
    # same grey, and a grey-only canny would lose their outline.
    edges = np.max([cv2.Canny(np.ascontiguousarray(pixels[..., c]), 50, 120) for c in range(3)], 0)
    return Image.fromarray(edges).convert("RGB")


def sample_batch(
    rng: np.random.Generator, batch_size: int, combos: list[Combo] | None = None
) -> tuple[list[Image.Image], list[np.ndarray], list[Combo]]:
    pool = combos if combos is not None else train_combos()
    images, masks, picked = [], [], []
    for index in rng.integers(0, len(pool), size=batch_size):
        combo = pool[int(index)]
        image, mask = draw(combo.colour, combo.shape, combo.background, rng)
        images.append(image)
        masks.append(mask)
        picked.append(combo)
    return images, masks, picked
