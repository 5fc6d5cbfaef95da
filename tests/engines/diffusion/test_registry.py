from __future__ import annotations

from pathlib import Path

import pytest

from ronghe.engines.diffusion.registry import ModelRegistry, resolve_path
from ronghe.engines.shipped import default_controlnet_path, default_model_path
from ronghe.errors import BadRequest, NotReady
from ronghe.settings import Settings
from tests.conftest import DemoModel


def test_bundled_paths_resolve_to_the_shipped_folders() -> None:
    assert resolve_path("bundled:demo") == default_model_path()
    assert resolve_path("bundled:demo-canny") == default_controlnet_path()
    for kind in ("brightness", "tile"):
        assert resolve_path(f"bundled:demo-{kind}") == default_controlnet_path(kind)
        assert (default_controlnet_path(kind) / "config.json").is_file()
    with pytest.raises(ValueError, match="bundled:demo"):
        resolve_path("bundled:nope")


def test_default_settings_alias_the_spec_model_name(tmp_path: Path) -> None:
    registry = ModelRegistry(Settings(data_dir=tmp_path))
    entry = registry.get("Artist_V0.1.3")
    assert entry.name == "ronghe-demo" and entry.path == default_model_path()
    assert entry.controlnets == {kind: default_controlnet_path(kind)
                                 for kind in ("canny", "brightness", "tile")}
    assert registry.default_choice() == "Artist_V0.1.3"
    assert registry.find("") is entry  # empty model_name: the default model
    assert entry.queue.startswith("images")


def test_unknown_model_lists_the_choices(tmp_path: Path) -> None:
    registry = ModelRegistry(Settings(data_dir=tmp_path))
    with pytest.raises(BadRequest, match=r"ronghe-demo, Artist_V0\.1\.3") as info:
        registry.get("sd-xl-turbo")
    assert info.value.field == "model_name"


def test_folder_metadata_gives_native_size_and_steps(tmp_path: Path,
                                                     demo_model: DemoModel) -> None:
    registry = ModelRegistry(Settings(data_dir=tmp_path, image_models=[
        demo_model.spec(), demo_model.spec("pinned", aliases=[], default_steps=7,
                                           min_size=256, max_size=1024)]))
    entry = registry.get("ronghe-demo")
    assert entry.native_resolution == 32 and entry.default_steps == 20
    assert (entry.min_size, entry.max_size) == (64, 2048)
    pinned = registry.get("pinned")
    assert pinned.default_steps == 7 and (pinned.min_size, pinned.max_size) == (256, 1024)
    assert registry.readiness()[0]


def test_missing_files_fail_the_check_not_the_worker(tmp_path: Path) -> None:
    registry = ModelRegistry(Settings(data_dir=tmp_path, image_models=[
        {"name": "sd15", "path": str(tmp_path / "v1-5.safetensors"), "family": "sd15"},
        {"name": "folder", "path": str(tmp_path), "family": "sd15"}],
        image_default_model="sd15"))
    single = registry.get("sd15")
    assert single.single_file and single.native_resolution is None
    with pytest.raises(NotReady, match=r"missing at .*v1-5\.safetensors"):
        registry.check(single)
    with pytest.raises(NotReady, match="not a diffusers folder"):
        registry.check(registry.get("folder"))
    ready, detail = registry.readiness()
    assert not ready and "missing" in detail
