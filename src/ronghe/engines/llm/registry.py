"""Chat engines by name, as configured in ``settings.chat_models`` plus the ``.gguf`` files of
the models folder (``engines.diffusion.library``); each built on first use."""

from __future__ import annotations

from typing import Any

from ronghe.engines.cpu import CpuBudget, budget
from ronghe.engines.diffusion.library import Found, ModelsFolder
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


def folder_specs(settings: Settings, items: list[Found]) -> list[ChatModelSpec]:
    """The models folder's usable GGUFs, except names the configuration already uses."""
    taken = {spec.name for spec in settings.chat_models}
    return [ChatModelSpec(name=item.name, engine="llama_cpp", path=item.path)
            for item in items
            if item.kind == "chat" and item.problem is None and item.name not in taken]


def models_folder(settings: Settings) -> ModelsFolder:
    return ModelsFolder(settings.models_path, settings.loras_path)


class ChatEngines:
    def __init__(self, settings: Settings, cpu: CpuBudget = budget) -> None:
        self._settings = settings
        self._cpu = cpu
        self._folder = models_folder(settings)
        self._stamp: tuple[int, int] | None = None
        self._specs = {spec.name: spec for spec in settings.chat_models}
        self._engines: dict[str, ChatEngine] = {}
        self.default = settings.chat_default_model
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        """Add the folder's GGUFs again when a scan rewrote its index (a stat)."""
        stamp = self._folder.stamp()
        if not force and stamp == self._stamp:
            return
        self._stamp = stamp
        items = self._folder.current() if force else (self._folder.load() or [])
        specs = {spec.name: spec for spec in self._settings.chat_models}
        for spec in folder_specs(self._settings, items):
            specs[spec.name] = spec
        self._specs = specs

    def names(self) -> list[str]:
        self._refresh()
        return list(self._specs)

    def get(self, name: str | None = None) -> ChatEngine:
        self._refresh()
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


def list_chat_models(settings: Settings, items: list[Found] | None = None) -> list[dict[str, Any]]:
    """One row per chat model (configured, then the folder's), for ``ronghe models``."""
    rows = []
    found = items if items is not None else models_folder(settings).current()
    for spec in [*settings.chat_models, *folder_specs(settings, found)]:
        rows.append({
            "name": spec.name,
            "engine": spec.engine,
            "path": spec.path,
            "base_url": spec.base_url,
            "context": spec.n_ctx,
            "default": spec.name == settings.chat_default_model,
        })
    return rows
