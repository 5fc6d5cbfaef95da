"""The image feature: routes, the "image" job handler, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.images import serving
from ronghe.api.images.handler import KIND, register_handler
from ronghe.api.images.router import router
from ronghe.api.images.state import ImageMetrics, image_state
from ronghe.engines.cpu import budget
from ronghe.features import BaseFeature
from ronghe.jobs.answers import register_answer
from ronghe.services import Services


class ImageFeature(BaseFeature):
    name = "images"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        state = image_state(services)
        state.metrics = ImageMetrics(registry)
        services.readiness["images"] = state.registry.readiness
        services.closers.append(state.close)
        app.include_router(router)
        # task_events and webhooks send what task_result answers.
        register_answer(KIND, serving.task_body)

    def register_jobs(self, services: Services) -> None:
        register_handler()
        register_answer(KIND, serving.task_body)

    async def start(self, app: FastAPI, services: Services) -> None:
        budget.configure(services.settings.cpu_threads)
        image_state(services).loop = asyncio.get_running_loop()

    async def stop(self, app: FastAPI, services: Services) -> None:
        image_state(services).loop = None


feature = ImageFeature()
