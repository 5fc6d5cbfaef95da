"""The OpenAI-compatible feature: its routes on the engines the chat feature shares."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.chat.state import close_chat, ensure_chat_state
from ronghe.api.openai.router import router
from ronghe.features import BaseFeature
from ronghe.services import Services


class OpenAIFeature(BaseFeature):
    name = "openai"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        ensure_chat_state(app, services, registry)
        app.include_router(router)

    async def stop(self, app: FastAPI, services: Services) -> None:
        await close_chat(services)


feature = OpenAIFeature()
