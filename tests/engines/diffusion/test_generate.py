from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ronghe.engines.diffusion.generate import (
    ControlUnit,
    GenerationRequest,
    ImageEngine,
    render_size,
)
from ronghe.engines.diffusion.pipelines import PipelineCache
from ronghe.engines.diffusion.registry import ModelRegistry
from tests.conftest import DemoModel
from tests.engines.diffusion.conftest import image_settings
from tests.image_support import PROMPT, drawn, mean_diff, on
from tools.demo_models.diffusion import scoring


def request(**overrides: object) -> GenerationRequest:
    base = GenerationRequest(prompt=PROMPT, seeds=[0], width=64, height=64, steps=8,
                             guidance=5.0)
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_same_seed_same_images_and_each_image_has_its_own_seed(engine: ImageEngine) -> None:
    entry = engine.registry.get("ronghe-demo")
    first = engine.generate(on(entry, request(seeds=[5, 6])))
    again = engine.generate(on(entry, request(seeds=[5, 6])))
    alone = engine.generate(on(entry, request(seeds=[6])))
    other = engine.generate(on(entry, request(seeds=[7])))
    assert [im.size for im in first.images] == [(64, 64), (64, 64)]
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    assert np.array_equal(pixels(first.images[1]), pixels(again.images[1]))
    # Image 1 of seed 5 is image 0 of seed 6, batched or not (float noise aside).
    assert np.abs(pixels(first.images[1]) - pixels(alone.images[0])).max() <= 2
    assert mean_diff(first.images[0], first.images[1]) > 1
    assert mean_diff(alone.images[0], other.images[0]) > 1


def test_small_native_models_render_natively_and_resize_exactly(engine: ImageEngine) -> None:
    entry = engine.registry.get("ronghe-demo")
    result = engine.generate(on(entry, request(width=512, height=768, steps=2)))
    assert result.images[0].size == (512, 768)
    assert result.render_size == (32, 48) and result.resized
    unbounded = dataclasses.replace(entry, native_resolution=None)
    assert render_size(unbounded, 960, 640, 8) == (960, 640)
    assert render_size(entry, 960, 640, 4) == (48, 32)


def test_progress_reports_every_step_and_an_exception_stops_the_run(
        engine: ImageEngine) -> None:
    entry = engine.registry.get("ronghe-demo")
    calls: list[tuple[int, int]] = []

    def on_step(done: int, total: int) -> None:
        calls.append((done, total))

    engine.generate(on(entry, request(seeds=[1, 2, 3], steps=4)), on_step)
    assert calls == [(3, 12), (6, 12), (9, 12), (12, 12)]

    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_at_three(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        engine.generate(on(entry, request(steps=50)), stop_at_three)
    assert seen == [1, 2, 3]


def test_img2img_resembles_the_init_image_more_as_strength_falls(
        engine: ImageEngine) -> None:
    entry = engine.registry.get("ronghe-demo")
    init = drawn("green", "square", "white", size=64)
    distances = []
    for strength in (0.0, 0.25, 0.6, 1.0):
        result = engine.generate(on(entry, request(init_image=init, strength=strength, steps=12,
                                                prompt="a red circle on a blue background")))
        assert result.images[0].size == (64, 64)
        distances.append(mean_diff(init, result.images[0]))
    assert distances[0] < 5  # strength 0 keeps the image (up to the 32 px round trip)
    assert distances == sorted(distances) and distances[-1] > distances[1] + 5


def test_text_to_image_shows_what_the_prompt_asks(engine: ImageEngine,
                                                  demo_model: DemoModel) -> None:
    demo_model.require_real()
    entry = engine.registry.get("ronghe-demo")
    result = engine.generate(on(entry, request(seeds=[0, 1, 2, 3], steps=20, width=128,
                                            height=128)))
    readings = [scoring.read_image(im) for im in result.images]
    assert Counter(r.colour for r in readings)["red"] >= 3
    assert Counter(r.background for r in readings)["blue"] >= 3


def test_canny_controlnet_puts_the_shape_where_the_edges_are(
        engine: ImageEngine, demo_model: DemoModel) -> None:
    entry = engine.registry.get("ronghe-demo")
    square = drawn("white", "square", "black", size=128, seed=3)
    triangle = drawn("white", "triangle", "black", size=128, seed=8)
    outputs = {}
    for name, source in (("square", square), ("triangle", triangle)):
        result = engine.generate(on(entry, request(
            prompt=f"a blue {name} on a yellow background", seeds=[0, 1], steps=20,
            width=128, height=128, controls=[ControlUnit("canny", source)])))
        assert len(result.control_maps) == 1 and result.control_maps[0].size == (32, 32)
        outputs[name] = (result, scoring.enclosed_region(result.control_maps[0]))
    demo_model.require_real()
    for name, (result, region) in outputs.items():
        other = outputs["triangle" if name == "square" else "square"][1]
        masks = [scoring.foreground_mask(im.resize((32, 32), Image.Resampling.BILINEAR))
                 for im in result.images]
        own = float(np.mean([scoring.iou(m, region) for m in masks]))
        elsewhere = float(np.mean([scoring.iou(m, other) for m in masks]))
        # The shape sits where this edge map is (the two maps differ in place and shape).
        assert own > 0.5 and own > elsewhere + 0.1, (name, own, elsewhere)


def test_multiple_controlnet_units_with_img2img(engine: ImageEngine) -> None:
    entry = engine.registry.get("ronghe-demo")
    units = [ControlUnit("canny", drawn("red", "square", "blue"), 1.0, 0.0, 1.0),
             ControlUnit("canny", drawn("red", "circle", "blue"), 0.5, 0.0, 0.5, "canny", 50,
                         150)]
    result = engine.generate(on(entry, request(init_image=drawn("red", "square", "blue", 64),
                                            strength=0.5, controls=units)))
    assert len(result.images) == 1 and len(result.control_maps) == 2
    assert result.steps_run == 4


def test_sd15_family_runs_the_same_weights_in_batches_of_two(
        engine: ImageEngine, demo_model: DemoModel, tmp_path: Path) -> None:
    settings = image_settings(tmp_path, demo_model.spec("as-sd15", aliases=[], family="sd15"))
    registry = ModelRegistry(settings)
    sd15 = ImageEngine(registry, PipelineCache(registry))
    calls: list[int] = []
    chunked = sd15.generate(on(registry.get("as-sd15"), request(seeds=[1, 2, 3], steps=3)),
                            lambda done, total: calls.append(done))
    together = engine.generate(on(engine.registry.get("ronghe-demo"),
                               request(seeds=[1, 2, 3], steps=3)))
    assert calls == [2, 4, 6, 7, 8, 9]  # two images, then the third
    for a, b in zip(chunked.images, together.images, strict=True):
        assert np.abs(pixels(a) - pixels(b)).max() <= 2
