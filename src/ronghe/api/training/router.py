"""Training routes: translate HTTP to TrainingService (serving.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.deps import TrainingDep as Training
from ronghe.api.idempotent import IdempotencyKeyHeader, idempotent
from ronghe.api.training.protocol import TaskRef, TrainSubmit

router = APIRouter(tags=["training"])


@router.get("/api/v1b/get_train_form", summary="Trainable base models and main bodies")
def get_train_form(training: Training) -> dict[str, Any]:
    return {"code": 0, "info": training.form(), "msg": ""}


@router.post("/api/v1b/train_submit", summary="Train a LoRA on your datasets")
def train_submit(body: TrainSubmit, user: TokenUser, training: Training,
                 services: ServicesDep, response: Response,
                 key: IdempotencyKeyHeader = None) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        task = training.submit(user.id, body)
        return {"code": 0, "info": {"task_id": task.id}, "msg": ""}

    return idempotent(services, user, key, "train_submit", body, response, work)


@router.post("/api/v1b/train_progress", summary="State and progress of a training task")
def train_progress(body: TaskRef, user: TokenUser, training: Training,
                   request: Request) -> dict[str, Any]:
    # Flat like the vendor's answer, plus code/msg so envelope-checking clients work too.
    return {"code": 0, "msg": "",
            **training.progress(user.id, body.task_id, str(request.base_url))}


@router.post("/api/v1b/train_cancel", summary="Cancel a training task")
def train_cancel(body: TaskRef, user: TokenUser, training: Training) -> dict[str, Any]:
    task = training.cancel(user.id, body.task_id)
    return {"code": 0, "info": {"task_id": task.id, "state": task.state.value}, "msg": ""}
