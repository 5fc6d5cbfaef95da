"""The OpenAI Images feature: its routes (the image task itself is ronghe.tasks.images)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.openai_images.router import router
from ronghe.features import BaseFeature
from ronghe.services import Services


class OpenAIImagesFeature(BaseFeature):
    name = "openai_images"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        app.include_router(router)


feature = OpenAIImagesFeature()
