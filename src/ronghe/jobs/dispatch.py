"""Job dispatch: how a task id created by the API reaches a worker.

``Dispatcher`` is the seam: ``InProcessDispatcher`` (embedded mode, a worker thread in the
server process) and the Celery dispatcher (scale-out) implement it.  Either way the database
row is the truth and a message carries only the task id, so a lost message or a dead worker
loses nothing: ``recover`` finds the task again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import structlog

from ronghe.jobs.runner import Handlers, execute, worker_id
from ronghe.jobs.store import TaskStore, TaskView

log = structlog.get_logger(__name__)


class Dispatcher(Protocol):
    def submit(self, task: TaskView) -> None:
        """Hand a freshly created (pending) task to the workers."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def pick_fair(pending: Sequence[TaskView], served: dict[int, int]) -> TaskView | None:
    """FIFO with per-user fairness: the oldest task of the user served least recently."""
    if not pending:
        return None
    return min(pending, key=lambda t: (served.get(t.user_id, -1), t.created_at, t.id))


class InProcessDispatcher:
    """One worker thread per device, fed from the database.

    Tasks run one at a time per device; while a long job (training) runs, it may let waiting
    short tasks (image generation) run between its steps through ``yield_to_waiting``.
    """

    def __init__(self, store: TaskStore, handlers: Handlers | None = None,
                 devices: Sequence[str] = ("cpu",),
                 queues: Sequence[str] | None = None, instance: str = "",
                 poll_seconds: float = 2.0, interleave_prefix: str | None = None) -> None:
        self.store = store
        self.handlers = handlers
        self.devices = list(devices)
        self.queues = list(queues) if queues is not None else None
        self.interleave_prefix = interleave_prefix
        self.poll = poll_seconds
        # Work of this instance's earlier lives is ours to recover on start.
        self.instance_prefix = f"embedded:{instance}:" if instance else "embedded:"
        self.stopping = threading.Event()
        self._wake = threading.Condition()
        self._served: dict[int, int] = {}
        self._turn = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, task: TaskView) -> None:
        self.store.mark_dispatched(task.id)
        with self._wake:
            self._wake.notify()

    def start(self) -> None:
        redo, failed = self.store.recover(orphaned_worker_prefix=self.instance_prefix)
        if redo or failed:
            log.info("recovered tasks from a previous run", rerun=len(redo), failed=len(failed))
        self.stopping.clear()
        for device in self.devices:
            wid = worker_id(self.instance_prefix.rstrip(":"), device)
            t = threading.Thread(target=self._loop, args=(wid,), daemon=True,
                                 name=f"ronghe-worker-{device}")
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout=timeout)
        self._threads.clear()

    def _next(self, queues: Sequence[str] | None, prefix: str | None) -> TaskView | None:
        with self._lock:
            task = pick_fair(self.store.pending(queues, queue_prefix=prefix), self._served)
            if task is not None:
                self._turn += 1
                self._served[task.user_id] = self._turn
            return task

    def _run_one(self, wid: str, prefix: str | None = None, nested: bool = False) -> bool:
        task = self._next(self.queues, prefix)
        if task is None:
            return False

        def run_waiting() -> None:
            # Nested run of short tasks only; never another long job inside a long job.
            while not self.stopping.is_set() and self._run_one(wid, self.interleave_prefix,
                                                               nested=True):
                pass

        hook = run_waiting if not nested and self.interleave_prefix else None
        execute(self.store, task.id, wid, self.stopping, self.handlers, hook)
        return True

    def _loop(self, wid: str) -> None:
        while not self.stopping.is_set():
            try:
                if self._run_one(wid):
                    continue
            except Exception:  # the loop must survive a database outage
                log.exception("worker loop error")
            with self._wake:
                self._wake.wait(self.poll)
