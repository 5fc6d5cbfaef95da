"""Per-user fairness in the queue order itself, the pending cap and the submit rate limit,
on SQLite and PostgreSQL; and the issue-12 regression: a 400-task backlog of one user does
not make another user's single task wait behind it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from ronghe.auth.service import AuthService
from ronghe.db import Database, utcnow
from ronghe.db.migrate import upgrade
from ronghe.errors import RateLimited
from ronghe.jobs.dispatch import InProcessDispatcher
from ronghe.jobs.models import Task
from ronghe.jobs.status import Status
from ronghe.jobs.store import Limits, TaskStore
from ronghe.services import Services
from tests.conftest import make_settings
from tests.jobs.test_dispatch import GATE, ORDER, submit, wait_for


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Iterator[Database]:
    db = Database(db_url)
    upgrade(db.engine)
    auth = AuthService(db, make_settings(tmp_path))
    for email in ("a@b.co", "c@d.co", "e@f.co"):
        auth.add_user(email, "longenough")
    yield db
    db.dispose()


def run_all(store: TaskStore, queues: list[str] | None = None) -> list[int]:
    """Claims and finishes every pending task in the store's order; the owners in turn."""
    owners = []
    while (task := store.claim_next("w", queues)) is not None:
        owners.append(task.user_id)
        assert store.finish(task.id, "w", {})
    return owners


def test_users_are_served_round_robin(db: Database) -> None:
    store = TaskStore(db)
    for _ in range(5):
        store.create(1, "count", "q", {})
    store.create(2, "count", "q", {})
    first = store.claim_next("w")
    assert first is not None and first.user_id == 1
    # User 3 arrives while user 1's backlog waits: both join the round being served.
    store.create(3, "count", "q", {})
    store.create(3, "count", "q", {})
    assert store.finish(first.id, "w", {})
    assert run_all(store) == [2, 3, 1, 3, 1, 1, 1]


def test_fair_order_holds_per_queue_and_a_released_task_keeps_its_turn(db: Database) -> None:
    store = TaskStore(db)
    for _ in range(3):
        store.create(1, "count", "q1", {})
        store.create(1, "count", "q2", {})
    store.create(2, "count", "q2", {})
    head = store.claim_next("w", ["q2"])
    assert head is not None and head.user_id == 2 and head.queue == "q2"
    assert store.release(head.id, "w", "shutting down")
    assert run_all(store, ["q2"]) == [2, 1, 1, 1]
    assert run_all(store, ["q1"]) == [1, 1, 1]
    assert store.pending_count() == 0


def test_the_pending_cap_refuses_with_the_limit_named(db: Database) -> None:
    store = TaskStore(db, limits=Limits(max_pending_per_user=3))
    ids = [store.create(1, "count", "q", {}).id for _ in range(3)]
    with pytest.raises(RateLimited, match="at most 3 per user") as e:
        store.create(1, "count", "q", {})
    assert "max_pending_tasks_per_user" in e.value.msg and e.value.retry_after >= 1
    store.create(2, "count", "q", {})  # another user is not affected
    assert store.claim(ids[0], "w") is not None  # one starts: room for one more
    store.create(1, "count", "q", {})
    with pytest.raises(RateLimited):
        store.create(1, "count", "q", {})


def test_the_submit_rate_is_limited_per_user_over_a_rolling_minute(db: Database) -> None:
    store = TaskStore(db, limits=Limits(submits_per_minute=4))
    ids = [store.create(1, "count", "q", {}).id for _ in range(4)]
    with pytest.raises(RateLimited, match="at most 4 per minute") as e:
        store.create(1, "count", "q", {})
    assert 50 <= e.value.retry_after <= 61
    store.create(2, "count", "q", {})
    # Submits older than a minute no longer count, whatever state their tasks are in.
    with db.session() as s:
        s.execute(update(Task).where(Task.id == ids[0])
                  .values(created_at=utcnow() - timedelta(seconds=61)))
    store.create(1, "count", "q", {})


@pytest.fixture
def backlog_services(tmp_path: Path) -> Iterator[Services]:
    settings = make_settings(tmp_path / "data", max_pending_tasks_per_user=1000,
                             task_submit_rate_per_minute=0)
    svc = Services.build(settings)
    upgrade(svc.db.engine)
    yield svc
    svc.close()


def test_a_400_task_backlog_does_not_starve_another_user(backlog_services: Services) -> None:
    """Issue 12: B's one task waited behind 201 of A's 400 (the fairness window was the
    200 oldest pending tasks).  Now it runs right after the task A has running."""
    svc = backlog_services
    a = svc.auth.add_user("a@b.co", "longenough").id
    b = svc.auth.add_user("c@d.co", "longenough").id
    ORDER.clear()
    GATE.clear()
    worker = InProcessDispatcher(svc.tasks, poll_seconds=0.1)
    worker.start()
    try:
        hold = submit(svc, worker, a, n=1, label="hold", hold=True)
        wait_for(svc.tasks, hold, {Status.RUNNING})
        for i in range(400):
            submit(svc, worker, a, n=1, label=f"a{i}")
        mine = submit(svc, worker, b, n=1, label="b")
        GATE.set()
        wait_for(svc.tasks, mine, {Status.DONE}, timeout=60)
    finally:
        GATE.set()
        worker.stop()
    assert ORDER.index("b") <= 2, ORDER[:10]
