"""Durable tasks: the table, state transitions, handlers and dispatchers."""

from __future__ import annotations

from typing import Any

from ronghe.jobs.dispatch import Dispatcher, InProcessDispatcher
from ronghe.jobs.runner import Cancelled, Handlers, JobContext, register
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskStore, TaskView
from ronghe.queues import SHORT_QUEUE_PREFIX

__all__ = ["Cancelled", "Dispatcher", "Handlers", "JobContext", "Status", "TaskStore",
           "TaskView", "make_dispatcher", "register"]


def make_dispatcher(services: Any, handlers: Handlers | None = None) -> Dispatcher:
    """Celery when a broker is configured (it only sends: workers run the tasks), else the
    in-process worker, which runs ``handlers``."""
    settings = services.settings
    if settings.broker_url:
        from ronghe.jobs.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(services)
    return InProcessDispatcher(
        services.tasks, handlers, devices=("cpu",), instance=str(settings.data_dir),
        interleave_prefix=SHORT_QUEUE_PREFIX,
    )
