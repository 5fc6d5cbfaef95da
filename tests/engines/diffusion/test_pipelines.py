from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load

from ronghe.engines.diffusion.generate import GenerationRequest, ImageEngine
from ronghe.engines.diffusion.pipelines import (
    CONTROLNET,
    IMG2IMG,
    LoraSource,
    PipelineCache,
    module_bytes,
)
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.errors import NotReady
from tests.conftest import DemoModel
from tests.engines.diffusion.conftest import image_settings
from tests.image_support import PROMPT, lora_weights, mean_diff, on


def registry_of(tmp_path: Path, demo_model: DemoModel, *names: str) -> ModelRegistry:
    specs = [demo_model.spec(n, aliases=[]) for n in names]
    return ModelRegistry(image_settings(tmp_path, *specs, image_default_model=names[0]))


def test_modes_share_the_loaded_components(tmp_path: Path, demo_model: DemoModel) -> None:
    registry = registry_of(tmp_path, demo_model, "a")
    cache = PipelineCache(registry)
    loaded = cache.model(registry.get("a"))
    img2img = cache.pipeline(loaded, IMG2IMG)
    cn = cache.pipeline(loaded, CONTROLNET, ("canny",))
    assert img2img.unet is loaded.base.unet and cn.unet is loaded.base.unet
    assert cn.text_encoder is loaded.base.text_encoder and cn.vae is loaded.base.vae
    assert cache.pipeline(loaded, IMG2IMG) is img2img  # made once
    assert cache.model(registry.get("a")) is loaded and cache.loads == 1


def test_switching_models_evicts_the_least_recent_and_frees_it(
        tmp_path: Path, demo_model: DemoModel) -> None:
    registry = registry_of(tmp_path, demo_model, "a", "b", "c")
    cache = PipelineCache(registry, capacity=2)
    first = cache.model(registry.get("a"))
    cache.pipeline(first, CONTROLNET, ("canny",))
    unet = weakref.ref(first.base.unet)
    controlnet = weakref.ref(first.controlnets["canny"])
    del first
    cache.model(registry.get("b"))
    cache.model(registry.get("a"))  # a is now the most recent, b the least
    cache.model(registry.get("c"))
    assert cache.loaded() == ["a", "c"] and cache.evictions == 1
    cache.model(registry.get("b"))
    assert cache.loaded() == ["c", "b"]
    gc.collect()
    assert unet() is None and controlnet() is None


def test_memory_budget_evicts_by_size(tmp_path: Path, demo_model: DemoModel) -> None:
    registry = registry_of(tmp_path, demo_model, "a", "b")
    probe = PipelineCache(registry)
    one = module_bytes(list(probe.model(registry.get("a")).base.components.values()))
    cache = PipelineCache(registry, capacity=8, memory_budget_bytes=int(one * 1.5))
    cache.model(registry.get("a"))
    cache.model(registry.get("b"))
    assert cache.loaded() == ["b"] and cache.total_bytes() == one


def test_a_broken_checkpoint_fails_clearly_and_is_remembered(tmp_path: Path) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    registry = ModelRegistry(image_settings(
        tmp_path, {"name": "sd15", "path": str(bad), "family": "sd15"},
        image_default_model="sd15"))
    entry = registry.get("sd15")
    registry.check(entry)  # the file exists, so it looks fine until loaded
    with pytest.raises(NotReady, match="loading failed"):
        PipelineCache(registry).model(entry)
    with pytest.raises(NotReady, match="loading failed"):
        registry.check(entry)  # later submits fail at once


def test_lora_weight_scales_its_effect(tmp_path: Path, demo_model: DemoModel,
                                       engine: ImageEngine) -> None:
    data = lora_weights(demo_model.path)
    entry = engine.registry.get("ronghe-demo")

    def run(weight: float | None) -> np.ndarray:
        loras = [] if weight is None else [LoraSource("t1", "t1", weight, lambda: load(data))]
        req = GenerationRequest(PROMPT, [3], 64, 64, 8, 5.0, loras=loras)
        return engine.generate(on(entry, req)).images[0]

    plain = run(None)
    at = {w: mean_diff(plain, run(w)) for w in (0.0, 0.5, 1.0, 2.0)}
    assert at[0.0] < 0.5
    assert 0.5 < at[0.5] < at[1.0] < at[2.0]
    assert mean_diff(plain, run(None)) < 0.5  # switched off again afterwards
    loaded = engine.cache.model(entry)
    assert list(loaded.adapters) == ["lora_t1"]
