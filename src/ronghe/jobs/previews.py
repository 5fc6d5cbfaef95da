"""Live previews of running image tasks: stored as one file per task, overwritten in place,
named in the task's live ``detail`` so ``task_result`` can hand out a signed URL for it."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from ronghe.errors import NotFound
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskView

KIND = "preview"
DETAIL_KEY = "preview_file_id"
# Short-lived URLs: a preview is replaced every second and gone once the task ends.
URL_TTL_SECONDS = 600


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

    def discard(self) -> None:
        """The task ended: its preview goes (the images are the result now)."""
        if not self.detail:
            return
        with contextlib.suppress(NotFound, FileNotFoundError):
            self.files.delete(file_id(self.task.id), self.task.user_id)


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
