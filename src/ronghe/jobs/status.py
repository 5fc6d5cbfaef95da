from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A task's life: pending -> running -> done | failed | cancelled (running may go back
    to pending when its worker died and attempts remain)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (Status.DONE, Status.FAILED, Status.CANCELLED)
