"""Task state transitions.  Every transition is one conditional UPDATE, so any number of API
processes and workers (threads or machines) can share the table without locks of their own.

Guarantees (documented in docs/deployment.md):
- a task is *claimed* by one worker at a time: ``claim`` only moves pending -> running, or
  takes over a running task whose lease expired;
- a worker's writes (progress, result) only land while it still holds the claim, so a worker
  that was presumed dead and comes back cannot overwrite its successor's result;
- execution is at-least-once: a task whose worker dies mid-run is run again, up to
  ``max_attempts`` times in all, then failed with a reason.

Fairness lives in the queue order itself, so every dispatcher (the embedded worker, Celery
workers on any number of machines) serves users round-robin: ``create`` stamps each task with
a ``fair_key`` (its owner's next round), workers take the pending task with the lowest key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.orm import Session

from ronghe.db import Database, utcnow
from ronghe.db.base import UTCDateTime
from ronghe.errors import NotFound, RateLimited
from ronghe.jobs import events, paging
from ronghe.jobs.models import Task
from ronghe.jobs.status import Status

# TaskView and Lost live in ronghe.jobs.view; callers keep importing them from here.
from ronghe.jobs.view import MEMO, Lost, TaskView

# Built once: polling runs these on every request.
_BY_ID = select(Task.__table__).where(Task.id == bindparam("id"))
_BY_IDS = select(Task.__table__).where(Task.id.in_(bindparam("ids", expanding=True)),
                                       Task.user_id == bindparam("user_id"))
_CHANGED = select(Task.id, Task.user_id, Task.kind, Task.state, Task.params).where(
    Task.id == bindparam("id"))
# A row comparison, so the whole condition is a range of ix_tasks_state_queue_created
# (state, queue, created_at, id) and the count reads the index alone (an OR of the two
# cases made PostgreSQL fetch every pending row of the queue from the heap).
_AHEAD = select(func.count()).select_from(Task).where(
    Task.state == Status.PENDING.value, Task.queue == bindparam("queue"),
    tuple_(Task.created_at, Task.id) < tuple_(bindparam("created_at", type_=UTCDateTime()),
                                             bindparam("id", type_=Task.id.type)))


@dataclass(frozen=True)
class Limits:
    """Per-user admission limits; 0 turns a limit off."""

    max_pending_per_user: int = 0
    submits_per_minute: int = 0
    # Retry-After for a user at the pending cap: roughly when one of their tasks has started.
    cap_retry_seconds: int = 30


RATE_WINDOW = timedelta(seconds=60)
# How often recovery may fail on one task with an error that may pass (a database that is
# away) before the task is ended; an error about the data ends it at the first try.
RECOVER_TRIES = 3
# Result key of a failed task: the request field its error is about (TaskStore.fail).
ERROR_FIELD = "error_field"
log = structlog.get_logger("ronghe.jobs")
_PENDING = Status.PENDING.value


class TaskStore:
    def __init__(self, db: Database, lease_seconds: float = 120.0, max_attempts: int = 3,
                 limits: Limits | None = None) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.limits = limits or Limits()
        # Failed recoveries per task (this process): see recover().
        self._recover_failures: dict[str, int] = {}
        # Called in the transaction of every change (see ronghe.jobs.events).
        self.listeners: list[events.Listener] = []

    def _changed(self, s: Session, task_id: str, event: str,
                 listeners: Sequence[events.Listener] | None = None) -> None:
        row = s.execute(_CHANGED, {"id": task_id}).one()
        events.record(s, row, event, self.listeners if listeners is None else listeners)

    # --- API side

    def create(self, user_id: int, kind: str, queue: str, params: dict[str, Any],
               task_id: str | None = None) -> TaskView:
        """A new pending task; RateLimited when its owner is over a limit."""
        with self.db.session() as s:
            task = Task(user_id=user_id, kind=kind, queue=queue, params=params,
                        state=_PENDING, fair_key=self._admit(s, user_id))
            if task_id:
                task.id = task_id
            s.add(task)
            s.flush()
            events.record(s, task, events.QUEUED, self.listeners)
            return TaskView.of(task)

    def _admit(self, s: Session, user_id: int) -> int:
        """Checks the user's limits and returns the new task's fair_key.

        Keys are numbered rounds, lowest served first.  A user's task takes the round after
        their previous task's, but never one before the round being served now (the newest
        running task's, else the oldest pending one's).  So a user with 400 queued tasks
        holds rounds r..r+399 and another user's single task joins round r: it runs after
        at most about one task per worker; a user who resubmits as each task ends takes
        turns with the backlog.  Each read is one index seek, so the cost does not grow
        with the table (bench/queue.py)."""
        limits = self.limits
        now = utcnow()
        if limits.submits_per_minute:
            nth = s.scalar(select(Task.created_at).where(Task.user_id == user_id)
                           .order_by(Task.created_at.desc())
                           .offset(limits.submits_per_minute - 1).limit(1))
            if nth is not None and nth > now - RATE_WINDOW:
                wait = (nth + RATE_WINDOW - now).total_seconds()
                raise RateLimited(
                    f"too many task submits: at most {limits.submits_per_minute} per minute "
                    f"per user; try again in {int(wait) + 1} seconds", retry_after=wait)
        if limits.max_pending_per_user:
            mine = (select(Task.id).where(Task.user_id == user_id, Task.state == _PENDING)
                    .limit(limits.max_pending_per_user).subquery())
            if s.scalar(select(func.count()).select_from(mine)) >= limits.max_pending_per_user:
                raise RateLimited(
                    f"too many pending tasks: at most {limits.max_pending_per_user} per user "
                    "(max_pending_tasks_per_user); wait for some to start or cancel some",
                    retry_after=limits.cap_retry_seconds)
        current = s.scalar(select(Task.fair_key).where(Task.state == Status.RUNNING.value)
                           .order_by(Task.fair_key.desc()).limit(1))
        if current is None:
            current = s.scalar(select(Task.fair_key).where(Task.state == _PENDING)
                               .order_by(Task.fair_key, Task.created_at).limit(1)) or 0
        last = s.scalar(select(Task.fair_key).where(Task.user_id == user_id)
                        .order_by(Task.created_at.desc()).limit(1))
        return current if last is None else max(current, last + 1)

    def get(self, task_id: str, user_id: int | None = None) -> TaskView:
        row = None
        if isinstance(task_id, str) and task_id:
            with self.db.reading() as c:
                row = c.execute(_BY_ID, {"id": task_id}).first()
        if row is None or (user_id is not None and row.user_id != user_id):
            raise NotFound(f"task {str(task_id)[:64]!r} not found", field="task_id")
        return TaskView.of(row)

    def get_many(self, task_ids: Sequence[str], user_id: int) -> dict[str, TaskView]:
        with self.db.reading() as c:
            rows = c.execute(_BY_IDS, {"ids": list(task_ids), "user_id": user_id})
            return {t.id: TaskView.of(t) for t in rows}

    def ended(self, task_ids: Sequence[str]) -> set[str]:
        """Which of these tasks will never run again: ended (done, failed, cancelled) or gone.
        A worker drops the leftovers (checkpoints) of such tasks."""
        ids = list(task_ids)
        if not ids:
            return set()
        with self.db.reading() as c:
            live = set(c.scalars(select(Task.id).where(
                Task.id.in_(ids), Task.state.in_((Status.PENDING.value,
                                                  Status.RUNNING.value)))))
        return set(ids) - live

    def list(self, user_id: int, kind: str | None = None, state: Status | None = None,
             offset: int = 0, limit: int = 100) -> list[TaskView]:
        with self.db.session() as s:
            q = select(Task).where(Task.user_id == user_id)
            if kind:
                q = q.where(Task.kind == kind)
            if state:
                q = q.where(Task.state == state.value)
            q = q.order_by(Task.created_at.desc()).offset(offset).limit(limit)
            return [TaskView.of(t) for t in s.scalars(q)]

    def page(self, user_id: int, kinds: Sequence[str] | None = None,
             state: Status | None = None, offset: int = 0,
             limit: int = 20) -> tuple[list[TaskView], int]:
        """One user's tasks, newest first, and how many match in all (see listing)."""
        found = self.listing(user_id, kinds, state, offset, limit)
        return found.tasks, found.total

    def listing(self, user_id: int, kinds: Sequence[str] | None = None,
                state: Status | None = None, offset: int = 0, limit: int = 20,
                after: paging.Position | None = None) -> paging.Page:
        """A page by offset or after a position, each flat in depth (ronghe.jobs.paging)."""
        return paging.user_page(self.db, user_id, kinds, state, offset, limit, after)

    def active(self, kinds: Sequence[str] | None = None, offset: int = 0,
               limit: int = 20) -> tuple[list[tuple[TaskView, str]], int]:
        """Every user's pending and running tasks with their owner's email, oldest first
        (the order the queue serves them in), and how many there are in all."""
        return paging.active_page(self.db, kinds, offset, limit)

    def request_cancel(self, task_id: str, user_id: int) -> TaskView:
        """A pending task is cancelled at once; a running one is flagged and its worker stops
        at the next step.  Cancelling a finished task changes nothing."""
        self.get(task_id, user_id)
        self._cancel(Task.id == task_id, "cancelled by the user")
        return self.get(task_id, user_id)

    def cancel_all_of(self, user_id: int,
                      reason: str = "cancelled: the account was disabled") -> int:
        """Every unfinished task of one user, as ``request_cancel`` does each (a disabled
        account's queued work must not run on).  Returns how many tasks it touched."""
        return self._cancel(Task.user_id == user_id, reason)

    def _cancel(self, which: Any, reason: str) -> int:
        """Pending tasks matching ``which`` end cancelled (with their event); running ones
        are flagged for their workers.  Returns how many tasks it touched."""
        with self.db.session() as s:
            ended = list(s.scalars(
                update(Task).where(which, Task.state == Status.PENDING.value)
                .values(state=Status.CANCELLED.value, cancel_requested=True,
                        finished_at=utcnow(), error_msg=reason)
                .returning(Task.id).execution_options(synchronize_session=False)))
            for task_id in ended:
                self._changed(s, task_id, events.COMPLETED)
            flagged = s.execute(
                update(Task).where(which, Task.state == Status.RUNNING.value)
                .values(cancel_requested=True).execution_options(synchronize_session=False))
            return len(ended) + int(flagged.rowcount or 0)

    def wait_time(self, task: TaskView) -> int:
        """How many pending tasks of its queue are older than this pending one (0 once it
        runs or ended).  FIFO order: per-user fairness may let it pass some of them."""
        if task.state is not Status.PENDING:
            return 0
        with self.db.reading() as c:
            return int(c.execute(_AHEAD, {"queue": task.queue, "created_at": task.created_at,
                                          "id": task.id}).scalar() or 0)

    # --- dispatch side

    def mark_dispatched(self, task_id: str) -> None:
        with self.db.session() as s:
            s.execute(update(Task).where(Task.id == task_id).values(dispatched_at=utcnow()))

    def _claimable(self, queues: Sequence[str] | None, queue_prefix: str | None,
                   exclude: Sequence[str] = ()) -> Any:
        cond = and_(Task.state == _PENDING, Task.cancel_requested.is_(False),
                    Task.attempts < self.max_attempts)
        if queues is not None:
            cond = and_(cond, Task.queue.in_(list(queues)))
        if queue_prefix is not None:
            cond = and_(cond, Task.queue.startswith(queue_prefix))
        if exclude:
            cond = and_(cond, Task.queue.not_in(list(exclude)))
        return cond

    def fair_order(self, queues: Sequence[str] | None = None, limit: int = 8,
                   queue_prefix: str | None = None,
                   exclude_queues: Sequence[str] = ()) -> list[str]:
        """Ids of the next pending tasks in fair order (lowest fair_key, then oldest)."""
        where = self._claimable(queues, queue_prefix, exclude_queues)
        with self.db.reading() as c:
            return list(c.scalars(select(Task.id).where(where)
                                  .order_by(Task.fair_key, Task.created_at).limit(limit)))

    def claim_next(self, worker_id: str, queues: Sequence[str] | None = None,
                   queue_prefix: str | None = None, rounds: int = 5,
                   exclude_queues: Sequence[str] = ()) -> TaskView | None:
        """Claim the fairest pending task; None when there is none.  Several workers may
        race for the same head: the loser takes the next one.  ``exclude_queues``: queues
        another worker of the process serves (the download worker's)."""
        for _ in range(rounds):
            ids = self.fair_order(queues, queue_prefix=queue_prefix,
                                  exclude_queues=exclude_queues)
            if not ids:
                return None
            for task_id in ids:
                task = self.claim(task_id, worker_id)
                if task is not None:
                    return task
        return None

    def pending_count(self, queues: Sequence[str] | None = None) -> int:
        with self.db.reading() as c:
            return int(c.scalar(select(func.count()).select_from(Task)
                                .where(self._claimable(queues, None))) or 0)

    def claim(self, task_id: str, worker_id: str) -> TaskView | None:
        """Take a task to run; None when someone else has it or it is finished."""
        now = utcnow()
        with self.db.session() as s:
            result = s.execute(
                update(Task)
                .where(Task.id == task_id, Task.cancel_requested.is_(False),
                       Task.attempts < self.max_attempts,
                       or_(Task.state == Status.PENDING.value,
                           and_(Task.state == Status.RUNNING.value,
                                Task.lease_expires_at < now)))
                .values(state=Status.RUNNING.value, worker_id=worker_id,
                        attempts=Task.attempts + 1, lease_expires_at=now + self.lease,
                        started_at=now, error_msg="")
            )
            if not result.rowcount:
                return None
            self._changed(s, task_id, events.START)
            task = s.get(Task, task_id)
            assert task is not None
            s.refresh(task)
            return TaskView.of(task)

    def _owned(self, task_id: str, worker_id: str) -> Any:
        return and_(Task.id == task_id, Task.worker_id == worker_id,
                    Task.state == Status.RUNNING.value)

    def remember(self, task_id: str, worker_id: str, key: str, value: Any) -> dict[str, Any]:
        """Add ``key`` to the running task's memo (``params["memo"]``, apart from the input),
        durably, while this worker holds it: a decision a re-run must repeat (add_prompt's
        enriched prompt).  Raises Lost."""
        with self.db.session() as s:
            params = s.scalar(select(Task.params).where(self._owned(task_id, worker_id)))
            if params is None:
                raise Lost(task_id)
            memo = params.get(MEMO)
            params = {**params, MEMO: {**(memo if isinstance(memo, dict) else {}), key: value}}
            result = s.execute(update(Task).where(self._owned(task_id, worker_id))
                               .values(params=params))
            if not result.rowcount:
                raise Lost(task_id)
            return params

    def heartbeat(self, task_id: str, worker_id: str, progress: float | None = None,
                  detail: dict[str, Any] | None = None, event: bool = False) -> bool:
        """Extends the lease and records progress (with a progress event when ``event``);
        returns True when cancel was requested.  Raises Lost when the claim is gone."""
        values: dict[str, Any] = {"lease_expires_at": utcnow() + self.lease}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        if detail is not None:
            values["detail"] = detail
        with self.db.session() as s:
            result = s.execute(update(Task).where(self._owned(task_id, worker_id))
                               .values(**values))
            if not result.rowcount:
                raise Lost(task_id)
            if event:
                self._changed(s, task_id, events.PROGRESS)
            return bool(s.scalar(select(Task.cancel_requested).where(Task.id == task_id)))

    def finish(self, task_id: str, worker_id: str, result: dict[str, Any]) -> bool:
        return self._end(task_id, worker_id, Status.DONE, result=result, progress=1.0)

    def fail(self, task_id: str, worker_id: str, error_msg: str,
             field: str | None = None) -> bool:
        """``field``: the request field the error is about, kept in the result as
        ``error_field`` so a front door can answer it as the client's error without reading
        the message."""
        extra: dict[str, Any] = {"result": {ERROR_FIELD: field}} if field else {}
        return self._end(task_id, worker_id, Status.FAILED, error_msg=error_msg[:2000],
                         **extra)

    def cancelled(self, task_id: str, worker_id: str) -> bool:
        return self._end(task_id, worker_id, Status.CANCELLED, error_msg="cancelled by the user")

    def release(self, task_id: str, worker_id: str, reason: str) -> bool:
        """Give a claimed task back (worker shutting down): it runs again later."""
        with self.db.session() as s:
            result = s.execute(update(Task).where(self._owned(task_id, worker_id)).values(
                state=Status.PENDING.value, worker_id=None, lease_expires_at=None,
                attempts=Task.attempts - 1, error_msg=reason[:2000]))
            if result.rowcount:
                self._changed(s, task_id, events.REQUEUED)
            return bool(result.rowcount)

    def _end(self, task_id: str, worker_id: str, state: Status, **values: Any) -> bool:
        """Ends the task as ``state``; True when it was ours to end.  When the outcome cannot
        be written (a value the database refuses, a listener's row it cannot store) the task
        ends failed with the reason instead of staying running to be re-run for ever."""
        owned = self._owned(task_id, worker_id)
        try:
            return self._write_end(owned, task_id, state, self.listeners, **values)
        except Exception as exc:
            if transient(exc):
                raise  # the database is away: the lease brings the task back
            log.error("could not store a task's outcome; ending it as failed",
                      task_id=task_id, state=state.value, error=f"{type(exc).__name__}: {exc}")
            reason = unwritable_reason("its outcome", exc)
            return self._end_failed(owned, task_id, reason)

    def _write_end(self, where: Any, task_id: str, state: Status,
                   listeners: Sequence[events.Listener], **values: Any) -> bool:
        with self.db.session() as s:
            result = s.execute(update(Task).where(where).values(
                state=state.value, finished_at=utcnow(), lease_expires_at=None, **values))
            if result.rowcount:
                self._changed(s, task_id, events.COMPLETED, listeners)
            return bool(result.rowcount)

    def _end_failed(self, where: Any, task_id: str, reason: str) -> bool:
        """Fail the task with ``reason``: with its listeners (the webhook still tells the
        client), else without them when what they write is what cannot be stored."""
        values = {"error_msg": reason[:2000], "result": None}
        try:
            return self._write_end(where, task_id, Status.FAILED, self.listeners, **values)
        except Exception as exc:
            if transient(exc):
                raise
            log.error("ending the task without its listeners (webhooks)", task_id=task_id,
                      error=f"{type(exc).__name__}: {exc}")
            return self._write_end(where, task_id, Status.FAILED, (), **values)

    # --- recovery

    def recover(self, stale_pending_seconds: float | None = None,
                orphaned_worker_prefix: str | None = None) -> tuple[list[str], list[str]]:
        """Finds lost work.  Returns (task ids to dispatch again, task ids ended for good).

        - running tasks whose lease expired (their worker died), or that belong to workers
          known to be gone (``orphaned_worker_prefix``, e.g. this process's previous life):
          back to pending while attempts remain, else failed with the reason;
        - pending tasks never dispatched, or dispatched more than ``stale_pending_seconds``
          ago and never picked up (a lost message): dispatched again.

        Every change is a conditional UPDATE, so when several processes recover at once each
        task is handed back exactly once per attempt.  Each task is recovered in its own
        transaction: one that cannot be (a row the database refuses) is ended as failed
        with the reason, after ``RECOVER_TRIES`` tries when the error may pass, and never
        stops the others, nor a server's start-up, which recovers too.
        """
        now = utcnow()
        redo: list[str] = []
        ended: list[str] = []
        lost = or_(Task.lease_expires_at < now,
                   Task.worker_id.startswith(orphaned_worker_prefix)
                   if orphaned_worker_prefix else False)
        with self.db.reading() as c:
            rows = c.execute(select(Task.id, Task.attempts, Task.cancel_requested,
                                    Task.worker_id)
                             .where(Task.state == Status.RUNNING.value, lost)).all()
        for task_id, attempts, cancel, worker in rows:
            still_lost = and_(Task.id == task_id, Task.state == Status.RUNNING.value,
                              Task.worker_id == worker)
            try:
                again = self._recover_one(task_id, still_lost, attempts, cancel, now)
            except Exception as exc:
                again = self._recovery_failed(task_id, still_lost, exc)
            if again is not None:
                (redo if again else ended).append(task_id)
        if stale_pending_seconds is not None:
            cutoff = now - timedelta(seconds=stale_pending_seconds)
            stale_cond = and_(Task.state == Status.PENDING.value,
                              or_(Task.dispatched_at.is_(None), Task.dispatched_at < cutoff))
            with self.db.session() as s:
                # One UPDATE per task, so processes recovering at once each re-send a task
                # at most once; no listener runs here, nothing user-given is written.
                for task_id in list(s.scalars(select(Task.id).where(stale_cond))):
                    result = s.execute(update(Task).where(Task.id == task_id, stale_cond)
                                       .values(dispatched_at=now))
                    if result.rowcount:
                        redo.append(task_id)
        return redo, ended

    def _recover_one(self, task_id: str, still_lost: Any, attempts: int, cancel: bool,
                     now: Any) -> bool | None:
        """True: back to pending; False: ended; None: someone else recovered it first."""
        if cancel:
            values = {"state": Status.CANCELLED.value, "finished_at": now,
                      "error_msg": "cancelled by the user"}
        elif attempts >= self.max_attempts:
            values = {"state": Status.FAILED.value, "finished_at": now,
                      "error_msg": f"worker lost {attempts} times; giving up"}
        else:
            values = {"state": Status.PENDING.value, "worker_id": None,
                      "dispatched_at": now, "error_msg": "worker lost; retrying"}
        with self.db.session() as s:
            result = s.execute(update(Task).where(still_lost)
                               .values(lease_expires_at=None, **values))
            if not result.rowcount:
                return None
            again = values["state"] == Status.PENDING.value
            self._changed(s, task_id, events.REQUEUED if again else events.COMPLETED)
        self._recover_failures.pop(task_id, None)
        return again

    def _recovery_failed(self, task_id: str, still_lost: Any, exc: Exception) -> bool | None:
        """Counts a failed recovery; past the tries (or at once when the error is the data's,
        not the database's) the task ends failed.  False: ended; None: try again later."""
        tries = self._recover_failures.get(task_id, 0) + 1
        self._recover_failures[task_id] = tries
        error = f"{type(exc).__name__}: {exc}"
        if transient(exc) and tries < RECOVER_TRIES:
            log.warning("could not recover a task; will try again", task_id=task_id,
                        tries=tries, error=error)
            return None
        log.error("could not recover a task; ending it as failed", task_id=task_id,
                  tries=tries, error=error)
        try:
            done = self._end_failed(still_lost, task_id, unwritable_reason("it", exc))
        except Exception:
            log.exception("could not end an unrecoverable task", task_id=task_id)
            return None
        self._recover_failures.pop(task_id, None)
        return False if done else None


def transient(exc: BaseException) -> bool:
    """Whether a database error may pass on its own (the server is away, a lock timed out),
    as opposed to one about the data, which fails again on every try."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def unwritable_reason(what: str, exc: BaseException) -> str:
    """The reason a failed task gives when ``what`` could not be stored.  The exception's
    text is left out: it may quote the very value that cannot be written."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    return (f"internal error: the server could not store {what} ({type(cause).__name__}); "
            "the task was ended so that it does not run again")
