"""The AUTOMATIC1111-compatible feature: its routes (the image task is ronghe.tasks.images)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.sdapi.router import router
from ronghe.features import BaseFeature
from ronghe.services import Services


class SdapiFeature(BaseFeature):
    name = "sdapi"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        app.include_router(router)


feature = SdapiFeature()
