"""The in-process worker: runs handlers, reports progress, cancels, shuts down cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ronghe.jobs import register
from ronghe.jobs.dispatch import InProcessDispatcher, pick_fair
from ronghe.jobs.runner import JobContext
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskStore
from ronghe.services import Services

ORDER: list[str] = []
GATE = threading.Event()


def count_handler(ctx: JobContext) -> dict[str, Any]:
    """Counts to n, reporting each step; waits on GATE when asked, to hold the worker."""
    n = int(ctx.params["n"])
    if ctx.params.get("hold"):
        while not GATE.wait(0.05):
            ctx.progress(0.0)
    for i in range(n):
        ctx.progress((i + 1) / n, {"step": i + 1}, force=True)
        time.sleep(float(ctx.params.get("sleep", 0)))
    if ctx.params.get("boom"):
        raise ValueError("boom")
    ORDER.append(ctx.params["label"])
    return {"total": n}


register("count", count_handler)


def wait_for(store: TaskStore, task_id: str, states: set[Status], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = store.get(task_id)
        if t.state in states:
            return t
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} stuck in {store.get(task_id).state}")


@pytest.fixture
def worker(services: Services) -> Iterator[InProcessDispatcher]:
    ORDER.clear()
    GATE.clear()
    d = InProcessDispatcher(services.tasks, poll_seconds=0.1)
    d.start()
    yield d
    GATE.set()
    d.stop()


def submit(services: Services, d: InProcessDispatcher, user: int, **params: Any) -> str:
    t = services.tasks.create(user, "count", "images.test", params)
    d.submit(t)
    return t.id


def users(services: Services) -> tuple[int, int]:
    a = services.auth.add_user("a@b.co", "longenough").id
    b = services.auth.add_user("c@d.co", "longenough").id
    return a, b


def test_runs_to_done_with_progress(services: Services, worker: InProcessDispatcher) -> None:
    a, _ = users(services)
    tid = submit(services, worker, a, n=3, label="x")
    t = wait_for(services.tasks, tid, {Status.DONE})
    assert t.result == {"total": 3} and t.progress == 1.0 and t.detail == {"step": 3}


def test_errors_fail_the_task_with_the_reason(services: Services,
                                              worker: InProcessDispatcher) -> None:
    a, _ = users(services)
    tid = submit(services, worker, a, n=1, label="x", boom=True)
    t = wait_for(services.tasks, tid, {Status.FAILED})
    assert "ValueError: boom" in t.error_msg


def test_per_user_fairness(services: Services, worker: InProcessDispatcher) -> None:
    a, b = users(services)
    hold = submit(services, worker, a, n=1, label="hold", hold=True)
    wait_for(services.tasks, hold, {Status.RUNNING})
    ids = [submit(services, worker, a, n=1, label=f"a{i}") for i in range(3)]
    ids.append(submit(services, worker, b, n=1, label="b0"))
    GATE.set()
    for tid in ids:
        wait_for(services.tasks, tid, {Status.DONE})
    # b's only task does not wait behind all of a's.
    assert ORDER.index("b0") <= 1, ORDER


def test_cancel_stops_a_running_task(services: Services, worker: InProcessDispatcher) -> None:
    a, _ = users(services)
    tid = submit(services, worker, a, n=200, label="long", sleep=0.02)
    wait_for(services.tasks, tid, {Status.RUNNING})
    time.sleep(0.2)
    services.tasks.request_cancel(tid, a)
    t = wait_for(services.tasks, tid, {Status.CANCELLED}, timeout=5)
    assert 0 < t.progress < 1
    assert "long" not in ORDER


def test_shutdown_hands_running_work_back(services: Services) -> None:
    a, _ = users(services)
    d = InProcessDispatcher(services.tasks, poll_seconds=0.1)
    d.start()
    tid = submit(services, d, a, n=500, label="s", sleep=0.01)
    wait_for(services.tasks, tid, {Status.RUNNING})
    d.stop()
    t = services.tasks.get(tid)
    assert t.state is Status.PENDING and t.attempts == 0
    d2 = InProcessDispatcher(services.tasks, poll_seconds=0.1)
    d2.start()
    try:
        assert wait_for(services.tasks, tid, {Status.DONE}).result == {"total": 500}
    finally:
        d2.stop()


def test_pick_fair_prefers_least_recently_served() -> None:
    from datetime import UTC, datetime, timedelta

    from ronghe.jobs.store import TaskView

    def view(tid: str, user: int, minute: int) -> TaskView:
        when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
        return TaskView(tid, user, "count", "q", Status.PENDING, {}, None, "", 0.0, None, 0,
                        False, None, when, None, None)

    pending = [view("1", 1, 0), view("2", 1, 1), view("3", 2, 2)]
    assert pick_fair(pending, {}).id == "1"  # type: ignore[union-attr]
    assert pick_fair(pending, {1: 5}).id == "3"  # type: ignore[union-attr]
    assert pick_fair(pending, {1: 5, 2: 6}).id == "1"  # type: ignore[union-attr]
    assert pick_fair([], {}) is None
