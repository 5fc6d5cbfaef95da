"""The one interface image generation is used through, and the engine the settings ask for.

``ImageEngine`` (generate.py) runs in this process; ``IsolatedEngine`` (isolated.py) runs the
same call in a child process so the API process stays responsive.  Callers (the image task)
see only this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

from ronghe.engines.diffusion import device as placement
from ronghe.engines.diffusion.generate import (
    GenerationRequest,
    GenerationResult,
    ImageEngine,
    StepCallback,
)
from ronghe.engines.diffusion.isolated import ChildConfig, IsolatedEngine
from ronghe.engines.diffusion.pipelines import PipelineCache
from ronghe.engines.diffusion.preview import PreviewCallback
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.settings import Settings


class ImageEngineProtocol(Protocol):
    registry: ModelRegistry

    def generate(self, req: GenerationRequest,
                 on_step: StepCallback | None = None,
                 on_preview: PreviewCallback | None = None) -> GenerationResult:
        """Render ``req`` on its model; ``on_step(done, total)`` may raise to stop;
        ``on_preview(jpeg, width, height)`` gets live previews when ``req.preview_seconds``."""

    def describe(self) -> dict[str, Any]:
        """Where generation runs (for logs and diagnostics)."""

    def close(self) -> None:
        """Free the loaded pipelines (and the child process, if any)."""


def build_engine(settings: Settings,
                 registry: ModelRegistry | None = None) -> ImageEngine | IsolatedEngine:
    """The engine ``settings.image_worker_process`` asks for, on the process's registry."""
    registry = registry or ModelRegistry(settings)
    _free, total = placement.cuda_memory(settings.device)
    budget_bytes = placement.cache_budget(settings.device, total,
                                          settings.pipeline_memory_budget_mb)
    if settings.image_worker_process:
        return IsolatedEngine(registry, ChildConfig(
            list(settings.image_models), settings.image_default_model,
            settings.pipeline_cache_size, budget_bytes, settings.device,
            settings.models_path, settings.loras_path, settings.image_dtype,
            settings.image_offload, settings.image_compile))
    cache = PipelineCache(registry, settings.pipeline_cache_size, budget_bytes,
                          device=settings.device, dtype=settings.image_dtype,
                          offload=settings.image_offload, compile=settings.image_compile)
    return ImageEngine(registry, cache)
