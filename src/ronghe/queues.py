"""Task kinds and queue names, in one place (the API, workers and the model registry read
them).

A queue name says which workers may run a task: scale-out workers subscribe per image model
family (``images.<family>``) or to ``training``; the embedded worker runs every queue and
lets tasks of the short ``images*`` queues run between the steps of a training job.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What a task does; each kind has one handler (``ronghe.tasks``)."""

    IMAGE = "image"
    TRAIN = "train"
    # img2txt: one caption of one uploaded image, on the short image queues.
    CAPTION = "caption"
    # One image made larger by an upscaler (POST /api/v1b/upscale), on the same queues.
    UPSCALE = "upscale"
    # ronghe models pull on the server (admins): a model into the models folder.
    DOWNLOAD = "download"


class Queue(StrEnum):
    TRAINING = "training"
    # Model pulls: run by the API process's own download worker, which writes its models
    # folder (never by the image worker, which they would hold up for minutes).
    DOWNLOADS = "downloads"
    # Celery's queue for a message sent without one (never used by Ronghe's own tasks).
    DEFAULT = "images.default"


# Queues whose tasks are short enough to run between the steps of a long training job.
SHORT_QUEUE_PREFIX = "images"


def image_queue(family: str) -> str:
    """The queue of image tasks for one model family (demo, sd15, sdxl)."""
    return f"{SHORT_QUEUE_PREFIX}.{family}"


def all_queues(families: set[str]) -> list[str]:
    """Every image family configured, plus training: a worker that can run anything."""
    return [image_queue(f) for f in sorted(families)] + [Queue.TRAINING.value]
