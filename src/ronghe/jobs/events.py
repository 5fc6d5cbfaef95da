"""Task events: one row per change of a task, written in the transaction that changes it.

Every transition in ``TaskStore`` (queued, start, progress, completed, requeued) appends a
``task_events`` row in the same transaction as its UPDATE, so an event exists exactly when
its change committed: never lost, never ahead of the state.  Two readers use them:

- ``GET /api/v1b/task_events`` (server-sent events): any API process reads any worker's
  events from the shared database, and ``Last-Event-ID`` resumes with a plain indexed query;
- the webhook outbox (``ronghe.webhooks``), a listener that adds delivery rows in the same
  transaction.

Listeners are called with the open session, so what they write commits or rolls back with
the change itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ronghe.db import Database
from ronghe.db.base import Base, UTCDateTime, utcnow

QUEUED = "queued"
START = "start"
PROGRESS = "progress"
COMPLETED = "completed"
REQUEUED = "requeued"
# Progress events are written at most this often per task (the progress column itself is
# updated more often; an event per write would flood streams and the table).
PROGRESS_EVENT_SECONDS = 1.0
# Events are kept this long: long enough for any reconnecting stream to resume.
RETENTION = timedelta(hours=24)
# On PostgreSQL ids are taken before commit, so a transaction that commits late can land
# below ids a reader has already passed; readers look back this far to catch those.
LATE_COMMIT = timedelta(seconds=10)


class TaskEvent(Base):
    __tablename__ = "task_events"
    __table_args__ = (Index("ix_task_events_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


@dataclass(frozen=True)
class TaskChange:
    """What a listener learns about a change: the task as it is after it, and the event."""

    task_id: str
    user_id: int
    kind: str
    state: str
    params: dict[str, Any]
    event: str
    event_id: int


Listener = Callable[[Session, TaskChange], None]


def record(session: Session, row: Any, event: str, listeners: Sequence[Listener]) -> None:
    """Append the event for ``row`` (a tasks row after the change) and tell the listeners."""
    item = TaskEvent(task_id=row.id, user_id=row.user_id, event=event, state=row.state)
    session.add(item)
    session.flush()
    change = TaskChange(row.id, row.user_id, row.kind, row.state, row.params or {}, event,
                        item.id)
    for listener in listeners:
        listener(session, change)


@dataclass(frozen=True)
class EventRow:
    id: int
    task_id: str
    event: str
    created_at: datetime


def read_since(db: Database, user_id: int, after: int, limit: int = 500) -> list[EventRow]:
    """The user's events with id > ``after``, plus recent ones below it (late commits on
    PostgreSQL; callers drop the ids they have already sent)."""
    recent = utcnow() - LATE_COMMIT
    q = (select(TaskEvent.id, TaskEvent.task_id, TaskEvent.event, TaskEvent.created_at)
         .where(TaskEvent.user_id == user_id,
                or_(TaskEvent.id > after, TaskEvent.created_at >= recent))
         .order_by(TaskEvent.id).limit(limit))
    with db.reading() as c:
        return [EventRow(*r) for r in c.execute(q)]


def latest_id(db: Database, user_id: int) -> int:
    q = select(TaskEvent.id).where(TaskEvent.user_id == user_id).order_by(
        TaskEvent.id.desc()).limit(1)
    with db.reading() as c:
        return int(c.execute(q).scalar() or 0)


def prune(db: Database) -> int:
    with db.session() as s:
        return s.execute(delete(TaskEvent).where(
            TaskEvent.created_at < utcnow() - RETENTION)).rowcount or 0
