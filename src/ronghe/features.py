"""The feature registry: chat, image tasks, training … each plugs into the app the same way.

A feature is a module with a module-level ``feature`` object that has:

- ``install(app, services, registry)``: include routers, and what belongs to HTTP only:
  readiness checks and metrics (on the app's own Prometheus ``registry``);
- ``async start(app, services)`` / ``async stop(app, services)``: start and stop background
  work of its own with the app's lifespan (the built-in features have none).

What a process is (its chat engines, CPU budget, answer builders, webhook sender) is
``ronghe.runtime``'s, the same in ``serve`` and ``worker``; what workers run is
``ronghe.tasks``'.  Neither is a feature's business.

Built-in features are listed in ``BUILTIN``; third-party ones register under the
``ronghe.features`` entry-point group.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Protocol

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.services import Services

BUILTIN: tuple[str, ...] = (
    "ronghe.api.chat.feature",
    "ronghe.api.openai.feature",
    "ronghe.api.openai_images.feature",
    "ronghe.api.sdapi.feature",
    "ronghe.api.images.feature",
    "ronghe.api.training.feature",
    "ronghe.api.fusion.feature",
    "ronghe.api.events.feature",
    "ronghe.api.downloads.feature",
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


@cache
def enabled() -> tuple[Feature, ...]:
    found: list[Feature] = [importlib.import_module(path).feature for path in BUILTIN]
    found += [ep.load() for ep in entry_points(group="ronghe.features")]
    return tuple(found)
