"""Job dispatch: how a task id created by the API reaches a worker.

``Dispatcher`` is the seam: ``InProcessDispatcher`` (embedded mode, a worker thread in the
server process) and the Celery dispatcher (scale-out) implement it.  Either way the database
row is the truth and a message carries only the task id, so a lost message or a dead worker
loses nothing: ``recover`` finds the task again.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import structlog

from ronghe.jobs.runner import Handlers, run_claimed, worker_id
from ronghe.jobs.store import TaskStore, TaskView

log = structlog.get_logger(__name__)


class Dispatcher(Protocol):
    def submit(self, task: TaskView) -> None:
        """Hand a freshly created (pending) task to the workers."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class InProcessDispatcher:
    """One worker thread per device, fed from the database.

    Tasks run one at a time per device; while a long job (training) runs, it may let waiting
    short tasks (image generation) run between its steps through ``yield_to_waiting``.
    """

    def __init__(self, store: TaskStore, handlers: Handlers | None = None,
                 devices: Sequence[str] = ("cpu",),
                 queues: Sequence[str] | None = None, instance: str = "",
                 poll_seconds: float = 2.0, interleave_prefix: str | None = None,
                 sweep_seconds: float | None = None,
                 exclude_queues: Sequence[str] = ()) -> None:
        self.store = store
        self.handlers = handlers
        self.devices = list(devices)
        self.queues = list(queues) if queues is not None else None
        # Queues another dispatcher of this process serves (with queues=None: all but these).
        self.exclude_queues = tuple(exclude_queues)
        self.interleave_prefix = interleave_prefix
        self.poll = poll_seconds
        # How often expired leases are swept while running (a hung or foreign worker).
        self.sweep_seconds = sweep_seconds or max(2.0, store.lease.total_seconds() / 4)
        # Work of this instance's earlier lives is ours to recover on start.  The instance
        # id is short and stored (``stored_instance_id``): worker ids are cut to 128
        # characters, and a prefix derived from a long path no longer matched.
        self.instance_prefix = f"embedded:{instance}:" if instance else "embedded:"
        self.stopping = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []

    def submit(self, task: TaskView) -> None:
        self.store.mark_dispatched(task.id)
        with self._wake:
            self._wake.notify()

    def start(self, recover: bool = True) -> None:
        """Recover this instance's lost work, then start the worker threads.  ``recover``
        False: another dispatcher of this process (same instance) has just recovered it; a
        second recovery would take the tasks its workers already claimed for lost ones."""
        if recover:
            redo, failed = self.store.recover(orphaned_worker_prefix=self.instance_prefix)
            if redo or failed:
                log.info("recovered tasks from a previous run", rerun=len(redo),
                         failed=len(failed))
        self.stopping.clear()
        for device in self.devices:
            wid = worker_id(self.instance_prefix.rstrip(":"), device)
            t = threading.Thread(target=self._loop, args=(wid,), daemon=True,
                                 name=f"ronghe-worker-{device}")
            t.start()
            self._threads.append(t)
        reaper = threading.Thread(target=self._reap, daemon=True, name="ronghe-reaper")
        reaper.start()
        self._threads.append(reaper)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout=timeout)
        self._threads.clear()

    def sweep(self) -> tuple[list[str], list[str]]:
        """Expired leases back to pending (or failed after max attempts), like the Celery
        path's reaper: a task whose worker hung or vanished is never left running."""
        redo, ended = self.store.recover()
        if redo or ended:
            log.info("reaper", rerun=len(redo), ended=len(ended))
            with self._wake:
                self._wake.notify_all()
        return redo, ended

    def _reap(self) -> None:
        while not self.stopping.wait(self.sweep_seconds):
            try:
                self.sweep()
            except Exception:  # a database outage: try again next sweep
                log.exception("reaper sweep failed")

    def _run_one(self, wid: str, prefix: str | None = None, nested: bool = False) -> bool:
        # Fairness is the store's order (TaskStore.claim_next), shared with Celery workers.
        task = self.store.claim_next(wid, self.queues, queue_prefix=prefix,
                                     exclude_queues=self.exclude_queues)
        if task is None:
            return False

        def run_waiting() -> None:
            # Nested run of short tasks only; never another long job inside a long job.
            while not self.stopping.is_set() and self._run_one(wid, self.interleave_prefix,
                                                               nested=True):
                pass

        hook = run_waiting if not nested and self.interleave_prefix else None
        run_claimed(self.store, task, wid, self.stopping, self.handlers, hook)
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


class WithDownloads:
    """A dispatcher, plus this process's own worker for model pulls (``Queue.DOWNLOADS``).

    A pull writes the models folder of the server that was asked for it, so it runs here
    whatever dispatches the other tasks (the embedded worker or Celery), on a thread of its
    own: an hour-long download never holds up image tasks, and no Celery worker, which may
    see another disk, ever takes one."""

    def __init__(self, main: Dispatcher, downloads: InProcessDispatcher,
                 queue: str) -> None:
        self.main = main
        self.downloads = downloads
        self.queue = queue

    def submit(self, task: TaskView) -> None:
        (self.downloads if task.queue == self.queue else self.main).submit(task)

    def start(self) -> None:
        # One recovery for the whole instance, before any of its worker threads runs: the
        # pull worker's covers every queue, so the in-process main worker skips its own
        # (recovering twice re-queued a task the first worker had just claimed: a third
        # attempt after one crash, seen in tests/api/images/test_recovery.py).
        self.downloads.start()
        if isinstance(self.main, InProcessDispatcher):
            self.main.start(recover=False)
        else:
            self.main.start()

    def stop(self) -> None:
        self.downloads.stop()
        self.main.stop()


INSTANCE_FILE = "instance.id"


def stored_instance_id(data_dir: Path) -> str:
    """This data directory's instance id: 12 hex characters, made once and kept, so a
    restarted server recognises the tasks its previous run left running."""
    path = data_dir / INSTANCE_FILE
    try:
        value = path.read_text(encoding="utf-8").strip()
        if len(value) == 12 and value.isalnum():
            return value
    except FileNotFoundError:
        pass
    value = uuid.uuid4().hex[:12]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value, encoding="utf-8")
    os.replace(tmp, path)
    return value
