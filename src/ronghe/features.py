"""The feature registry: chat, image tasks, training … each plugs into the app the same way.

A feature is a module with a module-level ``feature`` object that has:

- ``install(app, services, registry)``: include routers, register readiness checks and
  metrics (on the app's own Prometheus ``registry``), put shared objects in
  ``services.extras``;
- ``async start(app, services)`` / ``async stop(app, services)``: start and stop background
  work (model loading, workers) with the app's lifespan;
- optionally ``register_jobs(services)``: register job handlers (``ronghe.jobs.register``).
  Called by the app and by ``ronghe worker``, which runs jobs without an HTTP app.

Built-in features are listed in ``BUILTIN``; third-party ones register under the
``ronghe.features`` entry-point group.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.services import Services

BUILTIN: tuple[str, ...] = (
    "ronghe.api.chat.feature",
    "ronghe.api.openai.feature",
    "ronghe.api.images.feature",
    "ronghe.api.training.feature",
    "ronghe.api.events.feature",
)


class Feature(Protocol):
    name: str

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None: ...

    async def start(self, app: FastAPI, services: Services) -> None: ...

    async def stop(self, app: FastAPI, services: Services) -> None: ...


class BaseFeature:
    """Convenience base: no background work unless a feature overrides start/stop."""

    name = "feature"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        raise NotImplementedError

    async def start(self, app: FastAPI, services: Services) -> None:
        return None

    async def stop(self, app: FastAPI, services: Services) -> None:
        return None


def _load(path: str) -> Any:
    return importlib.import_module(path).feature


@cache
def enabled() -> tuple[Feature, ...]:
    found: list[Feature] = []
    for path in BUILTIN:
        try:
            found.append(_load(path))
        except ModuleNotFoundError as exc:
            # A built-in feature whose package is not there yet is skipped, not fatal;
            # any other import error is a bug and must surface.
            if exc.name is None or not path.startswith(exc.name):
                raise
    for ep in entry_points(group="ronghe.features"):
        found.append(ep.load())
    return tuple(found)


def register_jobs(services: Services) -> None:
    """Job handlers of every feature, for processes that run jobs (app or Celery worker)."""
    for feature in enabled():
        hook = getattr(feature, "register_jobs", None)
        if hook is not None:
            hook(services)
