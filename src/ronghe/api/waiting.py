"""Waiting in a request for one of the user's tasks to end (img2txt's caption, fusion's
drawing): the event loop only polls the task table; the work runs in a worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ronghe.db.models import User
from ronghe.jobs import Status
from ronghe.jobs.view import TaskView
from ronghe.services import Services

ENDED = (Status.DONE, Status.FAILED, Status.CANCELLED)


async def until_ended(services: Services, user: User, task_id: str, seconds: float,
                      poll_seconds: float,
                      on_poll: Callable[[TaskView], None] | None = None) -> TaskView | None:
    """The task once it has ended, or None when it is still going after ``seconds``.
    ``on_poll`` sees each reading of it while it runs (fusion streams its progress)."""
    deadline = time.monotonic() + seconds
    while True:
        task = await services.db.run_read(services.tasks.get, task_id, user.id)
        if task.state in ENDED:
            return task
        if on_poll is not None:
            on_poll(task)
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(poll_seconds)
