"""Running one task: claim it, hand it to its kind's handler, record how it ended.

The same ``execute`` runs in the embedded in-process worker and in Celery workers, so a task
behaves the same whichever dispatcher delivered it.  Handlers are plain functions per task
kind that report through a ``JobContext``: the process's own (``ronghe.tasks.handlers``,
each bound to the few services it needs) are handed to the dispatcher; ``register`` adds
more for every worker of the process (extra modules: ``ronghe worker --import``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from ronghe.errors import RongheError
from ronghe.jobs.events import PROGRESS_EVENT_SECONDS
from ronghe.jobs.status import Status
from ronghe.jobs.store import Lost, TaskStore, TaskView
from ronghe.jobs.view import recalled

log = structlog.get_logger(__name__)


class Cancelled(Exception):
    """Raised inside a handler when its task was cancelled; the runner records it."""


class Shutdown(Exception):
    """Raised inside a handler when the worker is stopping; the task goes back to pending."""


class JobContext:
    """What a handler sees: its task, progress reporting, and cooperative stop checks.

    A background thread renews the task's lease while the handler runs, so long steps (model
    loading) never look like a dead worker; ``progress`` writes are rate-limited.
    """

    def __init__(self, store: TaskStore, task: TaskView, worker_id: str,
                 stopping: threading.Event,
                 yield_hook: Callable[[], None] | None = None) -> None:
        self.store = store
        self.task = task
        self.worker_id = worker_id
        self._stopping = stopping
        self._yield_hook = yield_hook
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._last_write = 0.0
        self._last_event = 0.0
        self._done = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                      name=f"lease-{task.id[:8]}")

    @property
    def params(self) -> dict[str, Any]:
        return self.task.params

    def remember(self, key: str, value: Any) -> None:
        """Store a decision in the task's memo before acting on it, so a re-run after a
        crash makes the same one (``TaskStore.remember``)."""
        params = self.store.remember(self.task.id, self.worker_id, key, value)
        self.task = dataclasses.replace(self.task, params=params)

    def recall(self, key: str) -> Any:
        """A decision an earlier attempt remembered, or None."""
        return recalled(self.task.params, key)

    def __enter__(self) -> JobContext:
        self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._beat.join(timeout=5)

    def _heartbeat(self) -> None:
        interval = max(1.0, self.store.lease.total_seconds() / 4)
        while not self._done.wait(interval):
            self._beat_once()

    def _beat_once(self, progress: float | None = None,
                   detail: dict[str, Any] | None = None, event: bool = False) -> None:
        try:
            if self.store.heartbeat(self.task.id, self.worker_id, progress, detail, event):
                self._cancel.set()
        except Lost:
            self._lost.set()
        except Exception as exc:  # a database blip must not kill the task; the lease covers it
            log.warning("heartbeat failed", task_id=self.task.id, error=str(exc))

    def progress(self, fraction: float, detail: dict[str, Any] | None = None,
                 force: bool = False) -> None:
        """Record progress (0-1) and raise if the task should stop."""
        now = time.monotonic()
        if force or now - self._last_write >= 0.2:
            self._last_write = now
            # Progress events (streams, webhooks) at most once a second per task.
            event = now - self._last_event >= PROGRESS_EVENT_SECONDS
            if event:
                self._last_event = now
            self._beat_once(fraction, detail, event)
        self.check()

    def check(self) -> None:
        """Raise Cancelled / Shutdown / Lost when the handler should stop now."""
        if self._lost.is_set():
            raise Lost(self.task.id)
        if self._cancel.is_set():
            raise Cancelled(self.task.id)
        if self._stopping.is_set():
            raise Shutdown(self.task.id)

    def yield_to_waiting(self) -> None:
        """Between steps of a long job: let the worker run short waiting tasks first."""
        if self._yield_hook is not None:
            self._yield_hook()


Handler = Callable[[JobContext], dict[str, Any]]
Handlers = Mapping[str, Handler]
_HANDLERS: dict[str, Handler] = {}


def register(kind: str, handler: Handler) -> None:
    """A handler for every worker of this process (one that needs no services)."""
    _HANDLERS[kind] = handler


def handler_for(kind: str, handlers: Handlers | None = None) -> Handler | None:
    found = handlers.get(kind) if handlers is not None else None
    return found or _HANDLERS.get(kind)


def worker_id(role: str, extra: str = "") -> str:
    parts = [role, socket.gethostname(), extra, str(os.getpid()), f"{time.time():.0f}"]
    return ":".join(p for p in parts if p)[:128]


def execute(store: TaskStore, task_id: str, worker: str, stopping: threading.Event,
            handlers: Handlers | None = None,
            yield_hook: Callable[[], None] | None = None) -> Status | None:
    """Claim and run one task.  Returns how it ended, or None when it was not ours to run."""
    task = store.claim(task_id, worker)
    if task is None:
        return None
    return run_claimed(store, task, worker, stopping, handlers, yield_hook)


def run_claimed(store: TaskStore, task: TaskView, worker: str, stopping: threading.Event,
                handlers: Handlers | None = None,
                yield_hook: Callable[[], None] | None = None) -> Status | None:
    """Run a task this worker has claimed; returns how it ended (None: claim lost)."""
    task_id = task.id
    handler = handler_for(task.kind, handlers)
    if handler is None:
        store.fail(task_id, worker, f"no handler for task kind {task.kind!r} in this worker")
        return Status.FAILED
    log.info("task started", task_id=task_id, kind=task.kind, attempt=task.attempts)
    started = time.perf_counter()
    try:
        with JobContext(store, task, worker, stopping, yield_hook) as ctx:
            result = handler(ctx)
            ctx.check()  # a cancel that arrived during the last step still wins
    except Cancelled:
        store.cancelled(task_id, worker)
        log.info("task cancelled", task_id=task_id)
        return Status.CANCELLED
    except Shutdown:
        store.release(task_id, worker, "worker shut down; will run again")
        log.info("task released for shutdown", task_id=task_id)
        return Status.PENDING
    except Lost:
        log.warning("task lost its claim; another worker has it", task_id=task_id)
        return None
    except RongheError as exc:
        store.fail(task_id, worker, exc.msg, field=exc.field)
        log.info("task failed", task_id=task_id, error=exc.msg)
        return Status.FAILED
    except Exception as exc:
        log.exception("task crashed", task_id=task_id)
        store.fail(task_id, worker, f"internal error: {type(exc).__name__}: {exc}"[:500])
        return Status.FAILED
    if store.finish(task_id, worker, result):
        log.info("task done", task_id=task_id, seconds=round(time.perf_counter() - started, 3))
        return Status.DONE
    return None
