"""The push feature: webhook routes and the task_events stream.  The webhook sender that
delivers is the process's, not a route's: ``ronghe.runtime`` runs it in API processes."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.events.router import router
from ronghe.features import BaseFeature
from ronghe.services import Services


class EventsFeature(BaseFeature):
    name = "events"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        app.include_router(router)


feature = EventsFeature()
