"""Task events are written in the transaction of the change they record."""

from __future__ import annotations

import contextlib

from sqlalchemy import select

from ronghe.jobs import events
from ronghe.jobs.events import TaskChange, TaskEvent
from ronghe.services import Services
from tests.conftest import PASSWORD


def kinds(services: Services, task_id: str) -> list[str]:
    with services.db.session() as s:
        return list(s.scalars(select(TaskEvent.event).where(TaskEvent.task_id == task_id)
                              .order_by(TaskEvent.id)))


def test_every_transition_records_one_event(services: Services) -> None:
    uid = services.auth.add_user("ev@example.com", PASSWORD).id
    store = services.tasks
    seen: list[TaskChange] = []
    store.listeners.append(lambda _s, change: seen.append(change))
    task = store.create(uid, "image", "images.demo", {"a": 1})
    assert store.claim(task.id, "w1") is not None
    store.heartbeat(task.id, "w1", 0.5)  # no event asked for
    store.heartbeat(task.id, "w1", 0.6, event=True)
    assert store.release(task.id, "w1", "shutting down")
    assert store.claim(task.id, "w2") is not None
    assert store.finish(task.id, "w2", {"ok": True})
    assert not store.finish(task.id, "w2", {"ok": True})  # no change, no event
    assert kinds(services, task.id) == ["queued", "start", "progress", "requeued", "start",
                                        "completed"]
    assert [c.event for c in seen] == kinds(services, task.id)
    assert seen[-1].state == "done" and seen[0].params == {"a": 1}

    cancelled = store.create(uid, "image", "images.demo", {})
    store.request_cancel(cancelled.id, uid)
    assert kinds(services, cancelled.id) == ["queued", "completed"]

    rows = events.read_since(services.db, uid, 0)
    assert [r.task_id for r in rows].count(task.id) == 6
    latest = events.latest_id(services.db, uid)
    assert latest == max(r.id for r in rows)
    # Recent events are read again below the cursor (late commits); callers drop repeats.
    assert len(events.read_since(services.db, uid, latest)) == len(rows)


def test_a_listener_failure_rolls_the_change_back(services: Services) -> None:
    uid = services.auth.add_user("ev2@example.com", PASSWORD).id
    store = services.tasks
    task = store.create(uid, "image", "images.demo", {})

    def broken(_s: object, change: TaskChange) -> None:
        if change.event == "start":
            raise RuntimeError("outbox unavailable")

    store.listeners.append(broken)
    with contextlib.suppress(RuntimeError):
        store.claim(task.id, "w1")
    assert store.get(task.id).state.value == "pending"
    assert kinds(services, task.id) == ["queued"]


def test_wait_time_counts_older_pending_tasks_of_the_queue(services: Services) -> None:
    uid = services.auth.add_user("ev3@example.com", PASSWORD).id
    store = services.tasks
    a, b, c = (store.create(uid, "image", "images.demo", {}) for _ in range(3))
    other = store.create(uid, "image", "images.sd15", {})
    assert [store.wait_time(store.get(t.id)) for t in (a, b, c, other)] == [0, 1, 2, 0]
    store.claim(a.id, "w")
    assert [store.wait_time(store.get(t.id)) for t in (a, b, c)] == [0, 0, 1]
