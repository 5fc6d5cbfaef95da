"""Aspect-ratio buckets: non-square images train at their own shape, a batch per bucket."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ronghe.engines.training.data import bucket_sizes, nearest_bucket, to_size
from ronghe.engines.training.lora import LoraTrainer
from ronghe.engines.training.presets import preset_for
from tests.conftest import DemoModel
from tests.training_support import concept_images


def test_buckets_keep_the_area_and_round_to_the_model_grid() -> None:
    sizes = bucket_sizes(512)
    assert (512, 512) in sizes and (576, 448) in sizes and (448, 576) in sizes
    assert all(w % 64 == 0 and h % 64 == 0 and 0.8 < w * h / 512**2 < 1.2 for w, h in sizes)
    assert nearest_bucket(1920, 1080, sizes) == max(sizes, key=lambda s: s[0] / s[1])
    assert nearest_bucket(300, 310, sizes) == (512, 512)
    assert all(w % 8 == 0 and h % 8 == 0 for w, h in bucket_sizes(32))


def test_to_size_covers_then_crops_the_centre() -> None:
    image = Image.new("RGB", (200, 100), "white")
    image.paste((255, 0, 0), (50, 0, 150, 100))
    out = to_size(image, 64, 48)
    assert out.size == (64, 48)
    assert out.getpixel((32, 24)) == (255, 0, 0)  # the centre survives the crop


def test_trainer_batches_come_from_one_bucket_each(demo_model: DemoModel) -> None:
    torch.set_num_threads(1)
    preset = replace(preset_for("demo", "Style"), steps=4, rank=2, batch_size=2, buckets=True,
                     warmup_steps=1)
    square = concept_images(2, size=32)
    wide = [im.resize((64, 36)) for im in concept_images(2, size=32, seed=1)]
    trainer = LoraTrainer(Path(demo_model.path), preset, seed=1)
    trainer.prepare(square + wide, ["purple star style"] * 4)
    summary = trainer.bucket_summary
    assert sorted(b["images"] for b in summary) == [2, 2] and len(summary) == 2
    assert any(b["width"] > b["height"] for b in summary)
    shapes_seen = {tuple(trainer.batch(step)[0].shape[2:]) for step in range(12)}
    assert len(shapes_seen) == 2
    for _ in range(preset.steps):
        assert np.isfinite(trainer.train_step())
