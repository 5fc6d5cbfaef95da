"""Guidance at full scale for the noisiest share of the steps, then lower."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load

from ronghe.engines.diffusion.generate import GenerationRequest, ImageEngine
from ronghe.engines.diffusion.guidance import GuidanceSchedule, pipeline_arguments
from ronghe.engines.diffusion.pipelines import LoraSource, PipelineCache
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.engines.shipped import default_model_path
from tests.conftest import DemoModel
from tests.engines.diffusion.conftest import image_settings
from tests.image_support import lora_weights, on
from tools.demo_models.diffusion.evaluate import load_pipeline, schedule_of

DEMO = {"guidance_end": 0.3, "late_guidance_scale": 1.5}


def test_the_schedule_comes_from_the_recommended_settings() -> None:
    assert GuidanceSchedule.from_recommended(DEMO) == GuidanceSchedule(0.3, 1.5)
    assert GuidanceSchedule(0.3, 1.5).recommended() == DEMO  # what the evals record
    assert GuidanceSchedule().recommended() == {}
    # The shipped demo model recommends exactly that.
    assert schedule_of(default_model_path()) == GuidanceSchedule(0.3, 1.5)


@pytest.mark.parametrize("recommended", [
    {}, {"guidance_end": 0.3}, {"late_guidance_scale": 1.5},
    {"guidance_end": 1.0, "late_guidance_scale": 1.5},  # the whole run: nothing to change
    {"guidance_end": 0.0, "late_guidance_scale": 1.5},
    # At or under 1 the pipelines stop doubling the batch mid-run, which breaks them.
    {"guidance_end": 0.3, "late_guidance_scale": 1.0},
    {"guidance_end": "0.3", "late_guidance_scale": 1.5},
])
def test_a_missing_or_unusable_schedule_guides_every_step(recommended: dict[str, Any]) -> None:
    schedule = GuidanceSchedule.from_recommended(recommended)
    assert not schedule.active and schedule.full_steps(20) == 20
    first, _hook = schedule.start(7.0, 20)
    assert first == 7.0


def test_full_steps_round_the_share_of_the_schedule() -> None:
    schedule = GuidanceSchedule(0.3, 1.5)
    # 0.3 * 20 is 6.000000000000001 in floats: rounded, not ceiled.
    assert [schedule.full_steps(n) for n in (1, 2, 10, 20, 30, 50)] == [1, 1, 3, 6, 9, 15]


def _scales_per_step(pipe: Any, arguments: dict[str, Any], prompt: str,
                     **extra: Any) -> list[float]:
    """The guidance scale each step of a real pipeline run used."""
    seen: list[float] = []
    hook = arguments.pop("callback_on_step_end")

    def callback(running: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> Any:
        seen.append(running.guidance_scale)  # the scale step ``step`` ran with
        return hook(running, step, timestep, kwargs)

    with torch.inference_mode():
        pipe(prompt, generator=torch.Generator().manual_seed(0), callback_on_step_end=callback,
             **arguments, **extra)
    return seen


def test_a_real_pipeline_runs_the_first_steps_at_full_scale_and_the_rest_lower() -> None:
    pipe = load_pipeline(default_model_path())
    schedule = GuidanceSchedule(0.3, 1.5)
    seen = _scales_per_step(pipe, pipeline_arguments(schedule, 5.0, 10),
                            "a red circle on a blue background")
    assert seen == [5.0] * 3 + [1.5] * 7
    # A requested scale under the late one is left alone.
    seen = _scales_per_step(pipe, pipeline_arguments(schedule, 1.2, 10), "a red circle")
    assert seen == [1.2] * 10


def test_img2img_that_starts_past_the_full_scale_part_is_guided_lower_from_its_start() -> None:
    schedule = GuidanceSchedule(0.3, 1.5)
    first, hook = schedule.start(5.0, 20, skipped=10)
    assert first == 1.5
    first, hook = schedule.start(5.0, 20, skipped=4)  # steps 4 and 5 still at full scale

    class Running:  # stands for the pipeline: the hook sets the attribute diffusers reads
        _guidance_scale = 5.0

    running = Running()
    hook(running, 0)
    assert running._guidance_scale == 5.0
    hook(running, 1)
    assert running._guidance_scale == 1.5


def test_the_engine_guides_a_model_by_its_schedule(demo_model: DemoModel, tmp_path: Path,
                                                   one_thread: None) -> None:
    # The same weights with a ronghe.json that recommends no schedule.
    plain = tmp_path / "plain"
    shutil.copytree(demo_model.path, plain)
    meta = json.loads((plain / "ronghe.json").read_text())
    meta["recommended"] = {"num_inference_steps": 20, "guidance_scale": 5.0}
    (plain / "ronghe.json").write_text(json.dumps(meta))
    settings = image_settings(tmp_path / "data", demo_model.spec(),
                              demo_model.spec("plain", aliases=[], path=str(plain)))
    registry = ModelRegistry(settings)
    engine = ImageEngine(registry, PipelineCache(registry))
    entry = registry.get("ronghe-demo")
    assert entry.guidance_schedule == GuidanceSchedule(0.3, 1.5)
    assert not registry.get("plain").guidance_schedule.active

    request = GenerationRequest(prompt="a green square on a white background", seeds=[3],
                                width=32, height=32, steps=20, guidance=5.0)
    scheduled = engine.generate(on(entry, request)).images[0]
    every_step = engine.generate(on(registry.get("plain"), request)).images[0]
    # What the engine drew is what a pipeline called with the schedule draws.
    pipe = load_pipeline(entry.path)
    with torch.inference_mode():
        direct = pipe(request.prompt, generator=torch.Generator().manual_seed(3),
                      **pipeline_arguments(entry.guidance_schedule, 5.0, 20)).images[0]
    assert _pixels(scheduled, direct) <= 2
    assert _pixels(scheduled, every_step) > 30


def _pixels(a: Image.Image, b: Image.Image) -> int:
    """The largest per-channel difference between two images."""
    return int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())


def test_a_request_with_loras_is_guided_every_step(engine: ImageEngine,
                                                   demo_model: DemoModel) -> None:
    data = lora_weights(demo_model.path)
    entry = engine.registry.get("ronghe-demo")
    request = GenerationRequest(prompt="a green square on a white background", seeds=[3],
                                width=32, height=32, steps=20, guidance=5.0)
    # At weight 1e-4 the LoRA is applied but changes next to nothing: what differs is how
    # the run is guided. At weight 0 it is not applied at all, and the schedule holds.
    def with_lora(weight: float) -> Image.Image:
        loras = [LoraSource(f"w{weight}", f"w{weight}", weight, lambda: load(data))]
        return engine.generate(on(entry, dataclasses.replace(request, loras=loras))).images[0]

    pipe = load_pipeline(entry.path)
    with torch.inference_mode():
        drawn = {name: pipe(request.prompt, generator=torch.Generator().manual_seed(3),
                            **pipeline_arguments(schedule, 5.0, 20)).images[0]
                 for name, schedule in (("every step", GuidanceSchedule()),
                                        ("scheduled", entry.guidance_schedule))}
    faint = with_lora(1e-4)
    assert _pixels(faint, drawn["every step"]) <= 2
    assert _pixels(faint, drawn["scheduled"]) > 30
    assert _pixels(with_lora(0.0), drawn["scheduled"]) <= 2
