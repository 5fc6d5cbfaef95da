"""The image feature: routes, readiness and metrics (the image task is ronghe.tasks.images)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.images import img2txt, pnginfo, upscale
from ronghe.api.images.router import router
from ronghe.features import BaseFeature
from ronghe.services import Services
from ronghe.tasks.metrics import ImageMetrics


class ImageFeature(BaseFeature):
    name = "images"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        services.image_metrics = ImageMetrics(registry)
        services.readiness["images"] = services.image_models.readiness
        app.include_router(router)
        app.include_router(img2txt.router)
        app.include_router(pnginfo.router)
        app.include_router(upscale.router)


feature = ImageFeature()
