"""Training routes: translate HTTP to TrainingService (serving.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ronghe.api.deps import TokenUser
from ronghe.api.deps import TrainingDep as Training
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
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


# 409: the name is taken; 503: the base model is broken.
@router.post("/api/v1b/train_submit", summary="Train a LoRA on your datasets",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 409, 429, 503))
def train_submit(body: TrainSubmit, user: TokenUser,
                 training: Training) -> MiaohuaOk[TrainSubmitted]:
    task = training.submit(user.id, body)
    return miaohua_ok(TrainSubmitted(task_id=task.id))


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
