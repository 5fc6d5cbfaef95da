"""The "download" task: ``ronghe models pull`` run by the server for an admin.

Progress (phase, bytes, speed, ETA, file) goes to the task row at most five times a second,
so ``task_events``, the admin's queue and the web app's "Add a model" panel read it like any
task's.  Every chunk checks for a cancel or a stopping server:

- a cancel ends the pull and removes its partial files (the admin asked for it to go);
- a stopping server hands the task back (``Shutdown``) and keeps them, so the recovered task
  resumes where it stopped, as a pull after a server crash does (its lease runs out, the
  restarted server claims it again).
"""

from __future__ import annotations

import shutil
from typing import Any

from ronghe.downloads.progress import DONE, DOWNLOADING, Progress
from ronghe.downloads.pull import Puller, PullRequest
from ronghe.jobs.runner import Cancelled
from ronghe.tasks.context import DownloadTaskContext


class TaskReporter:
    """A pull's progress as the task's progress (0-1) and detail."""

    def __init__(self, ctx: DownloadTaskContext, ref: str) -> None:
        self.ctx = ctx
        self.ref = ref
        self.fraction = ctx.task.progress
        self.phase = ""
        self.notes: list[str] = []

    def update(self, progress: Progress) -> None:
        if progress.phase == DOWNLOADING and progress.bytes_total:
            self.fraction = progress.fraction
        elif progress.phase == DONE:
            self.fraction = 1.0
        changed = progress.phase != self.phase
        self.phase = progress.phase
        detail = {**progress.to_dict(), "ref": self.ref, "notes": self.notes[-5:]}
        self.ctx.progress(self.fraction, detail, force=changed)

    def note(self, message: str) -> None:
        self.notes.append(message)


def run(ctx: DownloadTaskContext) -> dict[str, Any]:
    request = PullRequest.from_params(ctx.params)
    puller = Puller(ctx.places, TaskReporter(ctx, request.ref), ctx.access)
    try:
        installed = puller.pull(request, rescan=ctx.rescan)
    except Cancelled:
        shutil.rmtree(ctx.places.staging / request.key(), ignore_errors=True)
        raise
    finally:
        puller.close()
    return {**installed.to_dict(), "ref": request.ref}
