"""Chat models from the models folder's GGUFs: at start, and after a scan elsewhere."""

from __future__ import annotations

from pathlib import Path

from ronghe.engines.diffusion.library import ModelsFolder
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.registry import ChatEngines, list_chat_models
from ronghe.settings import Settings


def test_gguf_files_join_the_chat_models(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    engines = ChatEngines(settings)
    assert engines.names() == ["smollm2"]
    models = settings.models_path
    models.mkdir(parents=True)
    (models / "helper.gguf").symlink_to(resolve_model_path("bundled:smollm2"))
    (models / "smollm2.gguf").symlink_to(resolve_model_path("bundled:smollm2"))  # taken
    (models / "junk.gguf").write_bytes(b"\0" * 16)
    assert engines.names() == ["smollm2"]  # nothing scanned yet
    found = ModelsFolder(models, settings.loras_path).scan()  # e.g. `ronghe models scan`
    assert {f.name: f.problem for f in found} == {
        "helper": None, "junk": "not a GGUF file", "smollm2": None}
    assert engines.names() == ["smollm2", "helper"]
    assert engines.get("helper").name == "helper"
    rows = list_chat_models(settings)
    assert [(r["name"], r["path"]) for r in rows] == [
        ("smollm2", "bundled:smollm2"), ("helper", str(models / "helper.gguf"))]
