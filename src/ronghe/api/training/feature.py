"""The training feature: upload, dataset and LoRA training routes (the job: ronghe.tasks)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.training import datasets, router
from ronghe.api.training.serving import TrainingService
from ronghe.features import BaseFeature
from ronghe.services import Services


class TrainingFeature(BaseFeature):
    name = "training"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        app.state.training = TrainingService(services)
        app.include_router(datasets.router)
        app.include_router(router.router)


feature = TrainingFeature()
