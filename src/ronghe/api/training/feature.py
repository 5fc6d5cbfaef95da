"""The training feature: uploads, datasets, LoRA training routes and the "train" task handler."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.training import datasets, router
from ronghe.api.training.serving import TrainingService
from ronghe.datasets.service import DatasetService
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.engines.training.job import KIND, run_training
from ronghe.features import BaseFeature
from ronghe.jobs import TaskView, register
from ronghe.jobs.answers import register_answer
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
        register_answer(KIND, progress_answer)

    def register_jobs(self, services: Services) -> None:
        register(KIND, run_training)
        register_answer(KIND, progress_answer)


def progress_answer(services: Services, task: TaskView, base_url: str) -> dict[str, Any]:
    """What train_progress answers: task_events and webhooks send the same."""
    training = services.extras.get(router.KEY)
    if training is None:  # a worker without the HTTP app
        training = services.extras[router.KEY] = TrainingService(
            services, DatasetService(services.db, services.files),
            ModelRegistry(services.settings))
    return {"code": 0, "msg": "", **training.progress(task.user_id, task.id, base_url)}


feature = TrainingFeature()
