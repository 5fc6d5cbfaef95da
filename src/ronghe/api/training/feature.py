"""The training feature: uploads, datasets, LoRA training routes and the "train" task handler."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.training import datasets, router
from ronghe.api.training.serving import TrainingService
from ronghe.datasets.service import DatasetService
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.engines.training.job import KIND, run_training
from ronghe.features import BaseFeature
from ronghe.jobs import register
from ronghe.services import Services


class TrainingFeature(BaseFeature):
    name = "training"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        sets = DatasetService(services.db, services.files)
        services.extras["datasets"] = sets
        services.extras[router.KEY] = TrainingService(services, sets,
                                                      ModelRegistry(services.settings))
        app.include_router(datasets.router)
        app.include_router(router.router)

    def register_jobs(self, services: Services) -> None:
        register(KIND, run_training)


feature = TrainingFeature()
