"""What the store hands out: a read-only snapshot of a task row, its memo, and the error a
worker gets when it no longer holds its task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from ronghe.jobs.models import Task
from ronghe.jobs.status import Status


@dataclass(frozen=True)
class TaskView:
    """A read-only snapshot of a task row."""

    id: str
    user_id: int
    kind: str
    queue: str
    state: Status
    params: dict[str, Any]
    result: dict[str, Any] | None
    error_msg: str
    progress: float
    detail: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    worker_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, t: Task | Row) -> TaskView:
        return cls(t.id, t.user_id, t.kind, t.queue, Status(t.state), t.params, t.result,
                   t.error_msg, t.progress, t.detail, t.attempts, t.cancel_requested,
                   t.worker_id, t.created_at, t.started_at, t.finished_at)


# Params key of the worker's decisions (add_prompt's prompt, training captions), kept apart
# from the submitted input: ``{"memo": {key: value}}``.
MEMO = "memo"


def recalled(params: dict[str, Any], key: str) -> Any:
    """A decision a worker remembered (``TaskStore.remember``), or None.  Tasks stored before
    the memo (issue 27) have their decisions at the top level of params: still read."""
    memo = params.get(MEMO)
    if isinstance(memo, dict) and key in memo:
        return memo[key]
    return params.get(key)


class Lost(Exception):
    """This worker no longer holds the task (cancelled, or re-claimed after a lease expired)."""
