"""The demo captioner's build tools: its data, its caption reader, and a reproducible
resumable build that loads through transformers' auto classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ronghe.engines.captioning import ImageCaptioner
from tools.demo_models.captioning import data
from tools.demo_models.captioning.build import CaptionerConfig, build
from tools.demo_models.captioning.evaluate import held_out, parse

SMOKE = CaptionerConfig.smoke(seed=3)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_captions_name_colour_shape_and_background() -> None:
    assert data.caption("orange", "star", "white") == "an orange star on a white background"
    assert parse("a purple triangle on a white background") == ("purple", "triangle", "white")
    assert parse("a red circle square on a blue background") == ("red", None, "blue")
    assert parse("a circle") == (None, "circle", None)


def test_held_out_pictures_are_drawn_differently_from_training_ones() -> None:
    rng = np.random.default_rng(0)
    train = [data.draw("red", "circle", "blue", rng, data.TRAIN) for _ in range(20)]
    test, _ = held_out(20)
    # Hard edges: every held-out pixel is exactly one of the palette's colours.
    palette = {tuple(c) for c in data.PALETTE.values()}
    assert all({tuple(p) for p in np.asarray(im).reshape(-1, 3)} <= palette for im in test)
    # Training pictures are anti-aliased and colour-jittered: many in-between colours.
    assert all(len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 2 for im in train)
    assert max(max(im.size) for im in test) > data.TRAIN.max_side


def test_resumed_build_equals_straight_build_and_loads_by_auto_classes(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    assert build(straight, SMOKE, tmp_path / "w1", resume=False) is not None
    resumed = tmp_path / "resumed"
    assert build(resumed, SMOKE, tmp_path / "w2", resume=False, stop_after=2) is None
    assert build(resumed, SMOKE, tmp_path / "w2", resume=True) is not None
    a = load_file(straight / "model.safetensors")
    b = load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    captioner = ImageCaptioner(str(straight))
    image = data.draw("red", "circle", "blue", np.random.default_rng(1))
    texts = captioner.caption_many([image, image.convert("RGBA")])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
