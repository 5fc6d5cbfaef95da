"""Durable tasks: the table, state transitions, handlers and dispatchers."""

from __future__ import annotations

from typing import Any

from ronghe.jobs.dispatch import (
    Dispatcher,
    InProcessDispatcher,
    WithDownloads,
    stored_instance_id,
)
from ronghe.jobs.runner import Cancelled, Handlers, JobContext, register
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskStore, TaskView
from ronghe.queues import SHORT_QUEUE_PREFIX, Queue

__all__ = ["Cancelled", "Dispatcher", "Handlers", "JobContext", "Status", "TaskStore",
           "TaskView", "make_dispatcher", "register"]


def make_dispatcher(services: Any, handlers: Handlers | None = None) -> Dispatcher:
    """Celery when a broker is configured (it only sends: workers run the tasks), else the
    in-process worker, which runs ``handlers``; either way with this process's own worker
    for model pulls beside it."""
    settings = services.settings
    instance = stored_instance_id(settings.data_dir)
    # Model pulls run on a worker thread of their own in this process (WithDownloads).
    pulls = Queue.DOWNLOADS.value
    downloads = InProcessDispatcher(services.tasks, handlers, devices=("downloads",),
                                    queues=(pulls,), instance=instance)
    main: Dispatcher
    if settings.broker_url:
        from ronghe.jobs.celery_dispatch import CeleryDispatcher

        main = CeleryDispatcher(services)
    else:
        main = InProcessDispatcher(
            services.tasks, handlers, devices=("cpu",), instance=instance,
            interleave_prefix=SHORT_QUEUE_PREFIX, exclude_queues=(pulls,),
        )
    return WithDownloads(main, downloads, pulls)
