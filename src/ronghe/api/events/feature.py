"""The push feature: webhook routes, the task_events stream, and this process's webhook
sender (every API process runs one; see ronghe.webhooks.sender)."""

from __future__ import annotations

import anyio
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.events.router import router
from ronghe.features import BaseFeature
from ronghe.services import Services
from ronghe.webhooks.sender import WebhookSender

KEY = "webhook_sender"


class EventsFeature(BaseFeature):
    name = "events"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        app.include_router(router)

    async def start(self, app: FastAPI, services: Services) -> None:
        sender = WebhookSender(services)
        app.state.webhook_sender = sender
        sender.start()

    async def stop(self, app: FastAPI, services: Services) -> None:
        sender = getattr(app.state, "webhook_sender", None)
        if sender is not None:
            await anyio.to_thread.run_sync(sender.stop)
            app.state.webhook_sender = None


feature = EventsFeature()
