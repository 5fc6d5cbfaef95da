"""Models dropped into <data_dir>/models: found by a scan, loaded offline from one file."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from safetensors.torch import save_file

from ronghe.engines.diffusion.generate import GenerationRequest, ImageEngine
from ronghe.engines.diffusion.pipelines import PipelineCache
from ronghe.engines.diffusion.registry import ModelRegistry, describe
from ronghe.errors import NotReady
from tests.checkpoint_support import to_original, write_checkpoint
from tests.conftest import DemoModel
from tests.engines.diffusion.conftest import image_settings
from tests.image_support import PROMPT

REQUEST = GenerationRequest(prompt=PROMPT, seeds=[7, 8], width=64, height=64, steps=3,
                            guidance=5.0)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1, as huggingface_hub reads it (at import, so its constant too)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_single_file_renders_like_the_diffusers_folder(
        tmp_path: Path, demo_model: DemoModel, offline: None, one_thread: None) -> None:
    data = tmp_path / "data"
    write_checkpoint(demo_model.path, data / "models" / "shapes-v1.safetensors")
    registry = ModelRegistry(image_settings(data, demo_model.spec()))
    assert registry.names() == ["ronghe-demo", "shapes-v1"]
    entry = registry.get("shapes-v1")
    assert (entry.family, entry.single_file, entry.native_resolution) == ("demo", True, 32)
    assert registry.problem(entry) is None
    engine = ImageEngine(registry, PipelineCache(registry, capacity=2))
    single = engine.generate(dataclasses.replace(REQUEST, model="shapes-v1"))
    folder = engine.generate(dataclasses.replace(REQUEST, model="ronghe-demo"))
    for a, b in zip(single.images, folder.images, strict=True):
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1
    assert single.images[0].tobytes() != single.images[1].tobytes()  # seeds differ


def test_scan_finds_what_was_dropped_in_and_says_why_not(
        tmp_path: Path, demo_model: DemoModel) -> None:
    data = tmp_path / "data"
    models = data / "models"
    registry = ModelRegistry(image_settings(data, demo_model.spec()))
    assert registry.names() == ["ronghe-demo"]
    whole = write_checkpoint(demo_model.path, models / "good.ckpt")
    (models / "cut.safetensors").write_bytes(
        write_checkpoint(demo_model.path, tmp_path / "x.safetensors").read_bytes()[:50_000])
    shutil.copytree(demo_model.path, models / "as-folder")
    (models / "notes.txt").write_text("not a model")
    # The demo's weights declared as SDXL by hand: the wrong family.
    shutil.copy(whole, models / "mislabelled.ckpt")
    (models / "mislabelled.ronghe.json").write_text(json.dumps({"family": "sdxl"}))

    other = ModelRegistry(image_settings(data, demo_model.spec()))  # e.g. `ronghe models scan`
    found = {f.name: f for f in other.found}
    assert set(found) == {"good", "cut", "as-folder", "mislabelled"}
    # this registry did not scan, but sees the index the other one wrote
    assert sorted(registry.names()) == ["as-folder", "cut", "good", "mislabelled",
                                        "ronghe-demo"]
    rows = {r["name"]: r for r in (describe(e, registry=registry) for e in registry.entries())}
    assert rows["good"]["family"] == "demo" and rows["good"]["problem"] is None
    assert rows["as-folder"]["family"] == "demo" and not rows["as-folder"]["single_file"]
    assert "truncated" in rows["cut"]["problem"] and rows["cut"]["family"] == "unknown"
    assert "given as sdxl" in rows["mislabelled"]["problem"]
    with pytest.raises(NotReady, match="truncated"):
        registry.check(registry.get("cut"))
    (models / "cut.safetensors").unlink()
    registry.scan()
    assert "cut" not in registry.names()


def test_a_failed_load_is_recorded_for_every_process(
        tmp_path: Path, demo_model: DemoModel, offline: None) -> None:
    data = tmp_path / "data"
    state = to_original(demo_model.path)
    del state["model.diffusion_model.out.2.weight"]  # looks whole; cannot load
    (data / "models").mkdir(parents=True)
    save_file(state, data / "models" / "odd.safetensors")
    registry = ModelRegistry(image_settings(data))
    entry = registry.get("odd")
    assert entry.family == "demo" and registry.problem(entry) is None
    with pytest.raises(NotReady, match="cannot be used: loading failed"):
        PipelineCache(registry).model(entry)
    with pytest.raises(NotReady, match="loading failed"):
        registry.check(entry)  # later submits fail fast
    later = ModelRegistry(image_settings(data))  # another process, e.g. `ronghe models`
    assert "loading failed" in (later.problem(later.get("odd")) or "")
    # A new file of that name is judged afresh.
    write_checkpoint(demo_model.path, data / "models" / "odd.safetensors")
    assert ModelRegistry(image_settings(data)).problem(later.get("odd")) is None


def test_a_ckpt_loads_the_folder_models_weights(
        tmp_path: Path, demo_model: DemoModel, offline: None) -> None:
    import torch

    data = tmp_path / "data"
    write_checkpoint(demo_model.path, data / "models" / "old-style.ckpt")
    registry = ModelRegistry(image_settings(data, demo_model.spec()))
    cache = PipelineCache(registry, capacity=2)
    single = cache.model(registry.get("old-style")).base
    folder = cache.model(registry.get("ronghe-demo")).base
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(single, name).state_dict(), getattr(folder, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert type(single.scheduler) is type(folder.scheduler)


def test_editing_a_sidecar_is_judged_again(tmp_path: Path, demo_model: DemoModel) -> None:
    data = tmp_path / "data"
    write_checkpoint(demo_model.path, data / "models" / "m.safetensors")
    registry = ModelRegistry(image_settings(data))
    assert registry.problem(registry.get("m")) is None
    (data / "models" / "m.ronghe.json").write_text(json.dumps({"family": "sd2"}))
    registry.scan()
    assert "given as sd2" in (registry.problem(registry.get("m")) or "")
    (data / "models" / "m.ronghe.json").write_text(json.dumps({"family": "demo",
                                                               "description": "mine"}))
    registry.scan()
    entry = registry.get("m")
    assert registry.problem(entry) is None and entry.spec.description == "mine"
