"""One user's tasks, newest first, a page at a time, at a cost that does not grow with depth.

Two ways in, both in the order of ``ix_tasks_user_kind_created`` / ``ix_tasks_user_created``
(user, [kind,] created_at, id, state), so nothing is ever sorted:

- **by offset** (page numbers): the page's ids are found by OFFSET in the index alone, then
  joined to their rows (a deferred join).  OFFSET still steps over the rows before the page,
  but as index entries (PostgreSQL: an index-only scan, no heap fetch where the visibility
  map says all-visible, which autovacuum keeps true of old rows, the ones deep pages hold);
  a plain ``SELECT * ... OFFSET`` fetched every skipped row (page 500: 7x page 1's cost).
- **after a position** (keyset): the tasks older than the last one a page showed.  One index
  seek whatever the depth, and no task is shown twice or skipped when new ones arrive
  between pages (OFFSET shifts by one per insert).

Each is two reads: an index-only count (and, after a position, how many come before it, in
the same read) and the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, tuple_

from ronghe.db import Database
from ronghe.db.models import User
from ronghe.jobs.models import Task
from ronghe.jobs.status import Status
from ronghe.jobs.view import TaskView

NEWEST_FIRST = (Task.created_at.desc(), Task.id.desc())


@dataclass(frozen=True)
class Position:
    """Where a page ended: its last task's creation time and id (the index's order)."""

    created_at: datetime
    id: str

    @classmethod
    def of(cls, task: TaskView) -> Position:
        return cls(task.created_at, task.id)


@dataclass(frozen=True)
class Page:
    tasks: list[TaskView]
    total: int
    # How many matching tasks come before this page (its offset, now).
    before: int


def user_page(db: Database, user_id: int, kinds: Sequence[str] | None = None,
              state: Status | None = None, offset: int = 0, limit: int = 20,
              after: Position | None = None) -> Page:
    """``limit`` tasks from ``offset``, or, given ``after``, the ``limit`` tasks older than
    it (``offset`` is then ignored)."""
    cond: list[Any] = [Task.user_id == user_id]
    if kinds:
        cond.append(Task.kind.in_(list(kinds)))
    if state is not None:
        cond.append(Task.state == state.value)
    with db.reading() as c:
        if after is None:
            total = int(c.scalar(select(func.count()).select_from(Task).where(*cond)) or 0)
            if offset >= total:
                return Page([], total, offset)
            ids = (select(Task.id).where(*cond).order_by(*NEWEST_FIRST)
                   .offset(offset).limit(limit).subquery())
            rows = c.execute(select(Task.__table__).join(ids, ids.c.id == Task.id)
                             .order_by(*NEWEST_FIRST))
            return Page([TaskView.of(r) for r in rows], total, offset)
        # A plain tuple on the right binds each value with its column's type (UTCDateTime).
        key, mark = tuple_(Task.created_at, Task.id), (after.created_at, after.id)
        counted = c.execute(select(func.count(), func.sum(case((key >= mark, 1), else_=0)))
                            .select_from(Task).where(*cond)).one()
        total, before = int(counted[0] or 0), int(counted[1] or 0)
        rows = c.execute(select(Task.__table__).where(*cond, key < mark)
                         .order_by(*NEWEST_FIRST).limit(limit))
        return Page([TaskView.of(r) for r in rows], total, before)


def active_page(db: Database, kinds: Sequence[str] | None, offset: int,
                limit: int) -> tuple[list[tuple[TaskView, str]], int]:
    """Every user's pending and running tasks with their owner's email, oldest first, and
    how many there are in all (the admin's queue view)."""
    cond = [Task.state.in_([Status.PENDING.value, Status.RUNNING.value])]
    if kinds:
        cond.append(Task.kind.in_(list(kinds)))
    with db.reading() as c:
        total = c.scalar(select(func.count()).select_from(Task).where(*cond)) or 0
        rows = c.execute(select(Task.__table__, User.email.label("owner_email"))
                         .join(User, User.id == Task.user_id).where(*cond)
                         .order_by(Task.created_at, Task.id).offset(offset).limit(limit))
        return [(TaskView.of(r), r.owner_email) for r in rows], int(total)
