"""What ``task_events`` and webhooks send for each task kind: the JSON the API's own
readers answer (``task_result``, img2txt, ``train_progress``).  ``create_app`` hands these
to ``ronghe.runtime``, which keeps them in ``Services.answers``."""

from __future__ import annotations

from typing import Any

from ronghe.api.downloads.serving import download_answer
from ronghe.api.images import img2txt, serving
from ronghe.api.training.serving import TrainingService
from ronghe.jobs.answers import Answer
from ronghe.jobs.store import TaskView
from ronghe.queues import Kind
from ronghe.services import Services


def train_answer(services: Services, task: TaskView, base_url: str) -> dict[str, Any]:
    return TrainingService(services).progress(task.user_id, task.id,
                                              base_url).model_dump(mode="json")


def builders() -> dict[str, Answer]:
    # An upscale task answers as an image task: its one image, task_type "upscale".
    return {Kind.IMAGE: serving.task_answer, Kind.CAPTION: img2txt.answer,
            Kind.TRAIN: train_answer, Kind.UPSCALE: serving.task_answer,
            Kind.DOWNLOAD: download_answer}
