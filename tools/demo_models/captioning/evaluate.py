"""Held-out eval of an image-to-text model on the demo world, through the auto classes.

The held-out images are drawn with ``data.HELD_OUT`` (hard edges, wider ranges of image
size and shape scale than training, exact colours) from an RNG stream training never uses.
A caption counts for colour, shape and background when it names each as the only word of
its kind (``parse``); the headline figure is the share with all three right.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tools.demo_models.captioning import data
from tools.demo_models.diffusion import shapes

# Training streams are seeded [seed, step]; this tag keeps the held-out stream apart.
HELD_OUT_STREAM = 7_777_777


def parse(text: str) -> tuple[str | None, str | None, str | None]:
    """(shape colour, shape, background) named by a caption, None where it is unclear."""
    words = text.lower().replace(",", " ").split()
    back = None
    if "background" in words:
        at = words.index("background")
        back = words[at - 1] if at and words[at - 1] in data.PALETTE else None
        words = words[:max(0, at - 1)]
    colours = [w for w in words if w in data.PALETTE]
    found = [w for w in words if w in data.ALL_SHAPES]
    return (colours[0] if len(colours) == 1 else None,
            found[0] if len(found) == 1 else None, back)


def held_out(count: int, shape_names: tuple[str, ...] = shapes.SHAPES,
             seed: int = 0) -> tuple[list[Image.Image], list[tuple[str, str, str]]]:
    rng = np.random.default_rng([HELD_OUT_STREAM, seed, len(shape_names)])
    return data.sample(rng, count, data.combos(shape_names), data.HELD_OUT)


@dataclass
class CaptionReport:
    colour: float
    shape: float
    background: float
    all_three: float
    images: int
    seconds_per_image: float
    misses: list[tuple[tuple[str, str, str], str]] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        return {"colour": round(self.colour, 3), "shape": round(self.shape, 3),
                "background": round(self.background, 3),
                "all_three": round(self.all_three, 3), "images": self.images,
                "seconds_per_image": round(self.seconds_per_image, 4)}


def evaluate(model: Path | str, count: int = 300, shape_names: tuple[str, ...] = shapes.SHAPES,
             seed: int = 0, batch_size: int = 50) -> CaptionReport:
    from ronghe.engines.captioning import ImageCaptioner

    captioner = ImageCaptioner(str(model))
    images, truths = held_out(count, shape_names, seed)
    texts: list[str] = []
    started = time.perf_counter()
    for at in range(0, len(images), batch_size):
        texts += captioner.caption_many(images[at:at + batch_size])
    seconds = (time.perf_counter() - started) / max(1, len(images))
    readings = [parse(text) for text in texts]
    hits = [[r[i] == t[i] for r, t in zip(readings, truths, strict=True)] for i in range(3)]
    joint = [all(h) for h in zip(*hits, strict=True)]
    misses = [(t, text) for t, text, ok in zip(truths, texts, joint, strict=True) if not ok]
    return CaptionReport(colour=statistics.fmean(hits[0]), shape=statistics.fmean(hits[1]),
                         background=statistics.fmean(hits[2]), all_three=statistics.fmean(joint),
                         images=len(images), seconds_per_image=seconds, misses=misses)
