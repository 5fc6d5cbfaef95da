"""Scale-out dispatch on Celery (Redis or RabbitMQ broker).

Messages carry only the task id; the database row stays the truth.  Delivery guarantees:

- ``acks_late`` + prefetch 1 + ``task_reject_on_worker_lost``: a message is acknowledged only
  after its task ended, and one worker holds one message at a time;
- a worker that dies mid-task stops renewing the task's lease; the API processes' reaper sees
  the expired lease and sends the task again (a new attempt), up to ``task_max_attempts``;
- a message that never arrives (broker down at submit, lost in transit) leaves the task
  pending and undispatched; the reaper sends it again;
- a duplicate delivery (broker redelivery after a long job, a re-send racing the original)
  is harmless: ``claim`` lets exactly one worker run an attempt, and result writes need the
  claim, so they are idempotent per attempt.

Execution is therefore at-least-once per attempt and exactly-once in effect.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog
from celery import Celery

from ronghe.jobs.runner import Handlers, execute, worker_id
from ronghe.jobs.store import TaskView
from ronghe.queues import Queue

if TYPE_CHECKING:
    from ronghe.services import Services

log = structlog.get_logger(__name__)

CELERY_TASK = "ronghe.run_task"
# Longer than any job: a broker must not redeliver a message whose task is still running.
# Redis honours this; RabbitMQ needs its own consumer_timeout raised (docs/deployment.md).
VISIBILITY_TIMEOUT = 24 * 3600


def make_celery(broker_url: str, services: Services | None = None,
                handlers: Handlers | None = None) -> Celery:
    app = Celery("ronghe", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_ignore_result=True,
        task_default_queue=Queue.DEFAULT.value,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    stopping = threading.Event()

    @app.task(name=CELERY_TASK, bind=True, ignore_result=True)
    def run_task(self: Any, task_id: str) -> str:
        svc = app.ronghe_services  # type: ignore[attr-defined]
        hostname = getattr(self.request, "hostname", "") or "celery"
        wid = worker_id("celery", f"{hostname}:{svc.settings.device}")
        ended = execute(svc.tasks, task_id, wid, stopping, handlers)
        return ended.value if ended else "skipped"

    app.ronghe_services = services  # type: ignore[attr-defined]
    app.ronghe_stopping = stopping  # type: ignore[attr-defined]
    return app


def run_worker(services: Services, queues: list[str], loglevel: str = "INFO",
               handlers: Handlers | None = None) -> None:
    """Run a Celery worker in this process: one task at a time (one device), thread pool so
    the main thread keeps the broker connection alive during long jobs."""
    from celery.signals import worker_shutting_down

    app = make_celery(services.settings.broker_url, services, handlers)

    def on_shutdown(**_: Any) -> None:
        # Running handlers stop at their next step and hand the task back (not lost).
        app.ronghe_stopping.set()  # type: ignore[attr-defined]

    worker_shutting_down.connect(on_shutdown, weak=False)
    device = services.settings.device.replace(":", "-")
    worker = app.Worker(queues=queues, pool="threads", concurrency=1, loglevel=loglevel,
                        hostname=f"ronghe-{device}@%h", without_gossip=True,
                        without_mingle=True)
    worker.start()


class CeleryDispatcher:
    """API side: send task ids to the broker, and sweep for lost work."""

    def __init__(self, services: Services, sweep_seconds: float | None = None) -> None:
        self.services = services
        self.settings = services.settings
        self.celery = make_celery(self.settings.broker_url, services)
        self.sweep_seconds = sweep_seconds or max(2.0, self.settings.task_lease_seconds / 4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, task: TaskView) -> None:
        if self.send(task.id, task.queue):
            self.services.tasks.mark_dispatched(task.id)

    def send(self, task_id: str, queue: str) -> bool:
        try:
            self.celery.send_task(CELERY_TASK, args=[task_id], queue=queue,
                                  retry=True, retry_policy={"max_retries": 2,
                                                            "interval_start": 0.2,
                                                            "interval_step": 0.5})
            return True
        except Exception as exc:  # broker down: the task stays pending; the sweep re-sends
            log.warning("broker unavailable; task will be sent later", task_id=task_id,
                        error=f"{type(exc).__name__}: {exc}")
            return False

    def sweep(self) -> tuple[list[str], list[str]]:
        # A pending task gets a fresh message after two lease periods without a claim.
        redo, ended = self.services.tasks.recover(
            stale_pending_seconds=2 * self.settings.task_lease_seconds)
        for task_id in redo:
            task = self.services.tasks.get(task_id)
            self.send(task.id, task.queue)
        if redo or ended:
            log.info("reaper", resent=len(redo), ended=len(ended))
        return redo, ended

    def _loop(self) -> None:
        while not self._stop.wait(self.sweep_seconds):
            try:
                self.sweep()
            except Exception:  # database or broker outage: try again next sweep
                log.exception("reaper sweep failed")

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ronghe-reaper")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
