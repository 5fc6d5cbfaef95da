"""The image feature's long-lived objects, kept in ``services.extras`` so API processes and
workers (in-process or Celery) find them the same way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from ronghe.engines.diffusion.generate import ImageEngine
from ronghe.engines.diffusion.isolated import ChildConfig, IsolatedEngine
from ronghe.engines.diffusion.pipelines import PipelineCache
from ronghe.engines.diffusion.registry import ModelRegistry

KEY = "images"


class ImageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submitted = Counter("ronghe_image_tasks_submitted_total", "Image tasks accepted",
                                 ["model", "task_type"], registry=registry)
        self.finished = Counter("ronghe_image_tasks_finished_total",
                                "Image tasks that ended in this process",
                                ["model", "outcome"], registry=registry)
        self.seconds = Histogram(
            "ronghe_image_generation_seconds", "Time to generate one task's images",
            ["model"], registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
        )


@dataclass
class ImageState:
    engine: ImageEngine | IsolatedEngine
    metrics: ImageMetrics | None = None
    # The app's event loop, for driving chat engines (add_prompt) from the worker thread.
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def registry(self) -> ModelRegistry:
        return self.engine.registry

    def close(self) -> None:
        if isinstance(self.engine, IsolatedEngine):
            self.engine.close()
        else:
            self.engine.cache.clear()


def build_engine(settings: Any) -> ImageEngine | IsolatedEngine:
    registry = ModelRegistry(settings)
    budget_mb = settings.pipeline_memory_budget_mb
    budget_bytes = budget_mb * 2**20 if budget_mb else None
    device = getattr(settings, "device", "cpu")
    if settings.image_worker_process:
        return IsolatedEngine(registry, ChildConfig(
            list(settings.image_models), settings.image_default_model,
            settings.pipeline_cache_size, budget_bytes, device))
    cache = PipelineCache(registry, settings.pipeline_cache_size, budget_bytes, device=device)
    return ImageEngine(registry, cache)


def image_state(services: Any) -> ImageState:
    """The ImageState of these services, made on first use (a worker without the API)."""
    state = services.extras.get(KEY)
    if state is None:
        state = services.extras[KEY] = ImageState(build_engine(services.settings))
    return state
