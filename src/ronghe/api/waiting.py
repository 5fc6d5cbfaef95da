"""Waiting in a request for one of the user's tasks to end (img2txt's caption, fusion's
drawing, the OpenAI and A1111 image front doors): the event loop only polls the task table;
the work runs in a worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import Request

from ronghe.db.models import User
from ronghe.errors import Timeout
from ronghe.jobs import Status
from ronghe.jobs.view import TaskView
from ronghe.services import Services

ENDED = (Status.DONE, Status.FAILED, Status.CANCELLED)
# How long the image front doors (OpenAI Images, A1111) wait for their task, and how often
# they look: a task that takes longer is still a task (in the history); the answer then
# says its id.  Read at each request, so a test can shorten them.
IMAGE_WAIT_SECONDS = 900.0
IMAGE_POLL_SECONDS = 0.25


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


class ClientGone(Exception):
    """The client hung up while its request waited; the task goes on (it is in the
    history), only the answer has no one to go to."""


async def until_ended_or_gone(request: Request, services: Services, user: User,
                              task_id: str) -> TaskView:
    """The task once it has ended, for a request that waits for it (the image front
    doors): a 504 (``still_running``) after ``IMAGE_WAIT_SECONDS``, and ClientGone as soon
    as the client disconnects, so no one polls for nobody."""
    waiting = asyncio.ensure_future(until_ended(services, user, task_id, IMAGE_WAIT_SECONDS,
                                                IMAGE_POLL_SECONDS))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not waiting.done():
            waiting.cancel()
    if not waiting.done() or waiting.cancelled():
        raise ClientGone(task_id)
    task = waiting.result()
    if task is None:
        raise still_running(task_id)
    return task


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def still_running(task_id: str) -> Timeout:
    """The answer to a request whose task outlasted ``IMAGE_WAIT_SECONDS``."""
    return Timeout(f"the image task {task_id} is still running after "
                   f"{IMAGE_WAIT_SECONDS:g} s; it goes on, and its images will be in your "
                   "history (task_list)")
