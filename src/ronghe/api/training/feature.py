"""The training feature: upload, dataset and LoRA training routes (the job: ronghe.tasks)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.training import datasets, router
from ronghe.api.training.serving import TrainingService
from ronghe.features import BaseFeature
from ronghe.jobs.answers import register_answer
from ronghe.jobs.store import TaskView
from ronghe.queues import Kind
from ronghe.services import Services


class TrainingFeature(BaseFeature):
    name = "training"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        training = TrainingService(services)
        app.state.training = training

        def progress_answer(services: Services, task: TaskView, base_url: str) -> dict[str, Any]:
            # task_events and webhooks send what train_progress answers.
            return training.progress(task.user_id, task.id, base_url).model_dump(mode="json")

        register_answer(Kind.TRAIN, progress_answer)
        app.include_router(datasets.router)
        app.include_router(router.router)


feature = TrainingFeature()
