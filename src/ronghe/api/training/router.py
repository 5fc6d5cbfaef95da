"""Training routes: translate HTTP to TrainingService (serving.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.deps import TrainingDep as Training
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.idempotent import IdempotencyKeyHeader, idempotent
from ronghe.api.training.protocol import (
    TaskRef,
    TrainCancelled,
    TrainForm,
    TrainProgress,
    TrainSubmit,
    TrainSubmitted,
)

router = APIRouter(tags=["training"])


SIGNED_IN = (400, 401, 413)


@router.get("/api/v1b/get_train_form", summary="Trainable base models and main bodies")
def get_train_form(training: Training) -> MiaohuaOk[TrainForm]:
    return miaohua_ok(training.form())


# 409: the name is taken, or an Idempotency-Key reused with another body; 503: the base
# model is broken.
@router.post("/api/v1b/train_submit", summary="Train a LoRA on your datasets",
             response_model=MiaohuaOk[TrainSubmitted],
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 409, 429, 503))
def train_submit(body: TrainSubmit, user: TokenUser, training: Training,
                 services: ServicesDep, response: Response,
                 key: IdempotencyKeyHeader = None) -> Any:
    def work() -> dict[str, Any]:
        task = training.submit(user.id, body)
        return miaohua_ok(TrainSubmitted(task_id=task.id)).model_dump(mode="json")

    return idempotent(services, user, key, "train_submit", body, response, work)


@router.post("/api/v1b/train_progress", summary="State and progress of a training task",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
def train_progress(body: TaskRef, user: TokenUser, training: Training,
                   request: Request) -> TrainProgress:
    return training.progress(user.id, body.task_id, str(request.base_url))


@router.post("/api/v1b/train_cancel", summary="Cancel a training task",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
def train_cancel(body: TaskRef, user: TokenUser,
                 training: Training) -> MiaohuaOk[TrainCancelled]:
    task = training.cancel(user.id, body.task_id)
    return miaohua_ok(TrainCancelled(task_id=task.id, state=task.state))
