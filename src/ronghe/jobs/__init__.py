"""Durable tasks: the table, state transitions, handlers and dispatchers."""

from __future__ import annotations

from typing import Any

from ronghe.jobs.dispatch import Dispatcher, InProcessDispatcher, stored_instance_id
from ronghe.jobs.runner import Cancelled, JobContext, register
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskStore, TaskView

__all__ = ["Cancelled", "Dispatcher", "JobContext", "Status", "TaskStore", "TaskView",
           "make_dispatcher", "register"]

# Queues whose tasks are short enough to run between the steps of a long training job.
SHORT_QUEUE_PREFIX = "images"


def make_dispatcher(services: Any) -> Dispatcher:
    settings = services.settings
    if settings.broker_url:
        from ronghe.jobs.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(services)
    return InProcessDispatcher(
        services.tasks, services, devices=("cpu",),
        instance=stored_instance_id(settings.data_dir),
        interleave_prefix=SHORT_QUEUE_PREFIX,
    )
