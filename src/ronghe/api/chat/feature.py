"""The chat feature: vendor routes, the shared engines, the CPU budget, shutdown."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.chat.router import router
from ronghe.api.chat.state import close_chat, ensure_chat_state
from ronghe.engines.cpu import budget
from ronghe.features import BaseFeature
from ronghe.services import Services


class ChatFeature(BaseFeature):
    name = "chat"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        ensure_chat_state(app, services, registry)
        app.include_router(router)

    async def start(self, app: FastAPI, services: Services) -> None:
        budget.configure(services.settings.cpu_threads)

    async def stop(self, app: FastAPI, services: Services) -> None:
        await close_chat(services)


feature = ChatFeature()
