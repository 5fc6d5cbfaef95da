"""Chat engines by name, as configured in ``settings.chat_models``; each built on first use."""

from __future__ import annotations

from typing import Any

from ronghe.engines.cpu import CpuBudget, budget
from ronghe.engines.llm.base import ChatEngine
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.llama_cpp import LlamaCppEngine
from ronghe.engines.llm.upstream import UpstreamEngine
from ronghe.errors import BadRequest
from ronghe.settings import ChatModelSpec, Settings


def build_engine(spec: ChatModelSpec, settings: Settings, cpu: CpuBudget = budget) -> ChatEngine:
    if spec.engine == "upstream":
        assert spec.base_url is not None  # ChatModelSpec validates it
        return UpstreamEngine(
            spec.name, spec.base_url,
            api_key=spec.api_key.get_secret_value() if spec.api_key else None,
            model=spec.upstream_model, n_ctx=spec.n_ctx,
            timeout_seconds=settings.chat_request_timeout_seconds,
        )
    assert spec.path is not None
    return LlamaCppEngine(
        spec.name, spec.path, n_ctx=spec.n_ctx, queue_size=settings.chat_queue_size,
        timeout_seconds=settings.chat_request_timeout_seconds, cpu=cpu,
        parallel=settings.chat_parallel,
    )


class ChatEngines:
    def __init__(self, settings: Settings, cpu: CpuBudget = budget) -> None:
        self._settings = settings
        self._cpu = cpu
        self._specs = {spec.name: spec for spec in settings.chat_models}
        self._engines: dict[str, ChatEngine] = {}
        self.default = settings.chat_default_model

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str | None = None) -> ChatEngine:
        wanted = name or self.default
        spec = self._specs.get(wanted)
        if spec is None:
            known = ", ".join(self._specs) or "none"
            if name:
                raise BadRequest(f"model: unknown chat model {name!r}; configured: {known}",
                                 field="model")
            raise BadRequest(f"model: no model given and the default chat model "
                             f"{wanted!r} is not configured; configured: {known}", field="model")
        engine = self._engines.get(wanted)
        if engine is None:
            engine = self._engines[wanted] = build_engine(spec, self._settings, self._cpu)
        return engine

    def started(self) -> list[ChatEngine]:
        return list(self._engines.values())

    def readiness(self) -> tuple[bool, str]:
        """Engines load on first use, so not-yet-loaded is ready; a bad path is not."""
        problems = []
        for spec in self._specs.values():
            if spec.engine == "llama_cpp" and spec.path:
                try:
                    if not resolve_model_path(spec.path).is_file():
                        problems.append(f"{spec.name}: no file at {spec.path}")
                except FileNotFoundError as exc:
                    problems.append(f"{spec.name}: {exc}")
        if problems:
            return False, "; ".join(problems)
        return True, f"{len(self._specs)} chat model(s): {', '.join(self._specs)}"

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()


def list_chat_models(settings: Settings) -> list[dict[str, Any]]:
    """One row per configured chat model, for ``ronghe models``."""
    rows = []
    for spec in settings.chat_models:
        rows.append({
            "name": spec.name,
            "engine": spec.engine,
            "path": spec.path,
            "base_url": spec.base_url,
            "context": spec.n_ctx,
            "default": spec.name == settings.chat_default_model,
        })
    return rows
