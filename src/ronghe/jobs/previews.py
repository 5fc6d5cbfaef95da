"""Live previews of running image tasks: stored as one file per task, overwritten in place,
named in the task's live ``detail`` so ``task_result`` can hand out a signed URL for it.

A preview outlives its task by a while rather than going with it.  A client that polled
``task_result`` a moment before the task ended holds a URL to the last preview and fetches
it a moment later, after the end: deleting the file at the end made that fetch a 404 (a
browser shows one as a console error), a race no client can close.  So a preview file is
kept until nobody has written it for ``KEEP_SECONDS``, more than a preview URL lives
(``URL_TTL_SECONDS``) plus the gap between two previews of a running task: every URL ever
handed out for it works until it expires.  The sweep runs whenever an image task ends, so
at most the previews of the last quarter hour's tasks (one small JPEG each) are on disk.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from ronghe.db.base import utcnow
from ronghe.errors import NotFound
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskView

KIND = "preview"
DETAIL_KEY = "preview_file_id"
# Short-lived URLs: a preview is replaced every second; a client asks again for the next.
URL_TTL_SECONDS = 120
# A preview nobody wrote for this long belongs to an ended task (a running one writes its
# preview every image_preview_seconds ≤ 60 s) and every URL to it has expired.
KEEP_SECONDS = 900
SWEEP_BATCH = 100


def file_id(task_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ronghe:preview:{task_id}"))


class PreviewSaver:
    """The ``on_preview`` callback of one running task.  ``detail`` goes into every
    progress write once a preview exists (the handler's detail replaces the whole column)."""

    def __init__(self, files: Any, task: TaskView) -> None:
        self.files = files
        self.task = task
        self.detail: dict[str, Any] = {}

    def __call__(self, data: bytes, width: int, height: int) -> None:
        info = self.files.save(self.task.user_id, data, "image/jpeg", KIND, width,
                                        height, file_id=file_id(self.task.id))
        self.detail = {DETAIL_KEY: info.id, "preview_at": round(time.time(), 3)}

    def finish(self) -> None:
        """The task ended: its images are the result now.  Its preview stays for the URLs
        already handed out (see the module's docstring); older ones go."""
        sweep(self.files)


def sweep(files: Any, now: datetime | None = None) -> int:
    """Delete previews not written for ``KEEP_SECONDS``; returns how many went."""
    cutoff = (now or utcnow()) - timedelta(seconds=KEEP_SECONDS)
    removed = 0
    for info in files.written_before(KIND, cutoff, SWEEP_BATCH):
        # Another worker's sweep may have taken it first.
        with contextlib.suppress(NotFound, FileNotFoundError):
            files.delete(info.id, info.user_id)
            removed += 1
    return removed


def preview_url(services: Any, task: TaskView, base_url: str) -> str:
    """A signed URL of the running task's latest preview, else ""."""
    detail = task.detail or {}
    if task.state is not Status.RUNNING or not detail.get(DETAIL_KEY):
        return ""
    files = services.files.get_many([str(detail[DETAIL_KEY])], task.user_id)
    info = files.get(str(detail[DETAIL_KEY]))
    if info is None:
        return ""
    return services.files.url(info, base_url, URL_TTL_SECONDS)
