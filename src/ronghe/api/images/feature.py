"""The image feature: routes, readiness and metrics (the image task is ronghe.tasks.images)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.images import img2txt, serving
from ronghe.api.images.router import router
from ronghe.engines.cpu import budget
from ronghe.features import BaseFeature
from ronghe.jobs.answers import register_answer
from ronghe.queues import Kind
from ronghe.services import Services
from ronghe.tasks.metrics import ImageMetrics


class ImageFeature(BaseFeature):
    name = "images"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        services.image_metrics = ImageMetrics(registry)
        services.readiness["images"] = services.image_models.readiness
        app.include_router(router)
        app.include_router(img2txt.router)
        # task_events and webhooks send what task_result answers.
        register_answer(Kind.IMAGE, serving.task_answer)
        register_answer(Kind.CAPTION, img2txt.answer)

    async def start(self, app: FastAPI, services: Services) -> None:
        budget.configure(services.settings.cpu_threads)


feature = ImageFeature()
