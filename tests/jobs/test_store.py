"""Task state transitions on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from ronghe.auth.service import AuthService
from ronghe.db import Database, utcnow
from ronghe.db.migrate import upgrade
from ronghe.errors import NotFound
from ronghe.jobs import events
from ronghe.jobs.models import Task
from ronghe.jobs.status import Status
from ronghe.jobs.store import Lost, TaskStore
from ronghe.webhooks.models import WebhookDelivery
from tests.conftest import make_settings


@pytest.fixture
def store(db_url: str, tmp_path) -> Iterator[TaskStore]:  # type: ignore[no-untyped-def]
    db = Database(db_url)
    upgrade(db.engine)
    auth = AuthService(db, make_settings(tmp_path))
    auth.add_user("a@b.co", "longenough")
    auth.add_user("c@d.co", "longenough")
    yield TaskStore(db, lease_seconds=60, max_attempts=2)
    db.dispose()


def expire_lease(store: TaskStore, task_id: str) -> None:
    with store.db.session() as s:
        s.execute(update(Task).where(Task.id == task_id)
                  .values(lease_expires_at=utcnow() - timedelta(seconds=1)))


def test_claim_is_exclusive_and_writes_need_the_claim(store: TaskStore) -> None:
    t = store.create(1, "image", "images.demo", {"prompt": "x"})
    assert t.state is Status.PENDING
    claimed = store.claim(t.id, "w1")
    assert claimed is not None and claimed.state is Status.RUNNING and claimed.attempts == 1
    assert store.claim(t.id, "w2") is None
    assert store.heartbeat(t.id, "w1", 0.5, {"step": 5}) is False
    with pytest.raises(Lost):
        store.heartbeat(t.id, "w2", 0.9)
    assert not store.finish(t.id, "w2", {"bad": True})
    assert store.finish(t.id, "w1", {"ok": True})
    done = store.get(t.id)
    assert (done.state, done.result, done.progress, done.detail) == (
        Status.DONE, {"ok": True}, 1.0, {"step": 5})
    assert store.claim(t.id, "w3") is None


def test_other_users_tasks_are_not_found(store: TaskStore) -> None:
    t = store.create(1, "image", "images.demo", {})
    with pytest.raises(NotFound):
        store.get(t.id, user_id=2)
    assert store.get_many([t.id], user_id=2) == {}
    with pytest.raises(NotFound):
        store.request_cancel(t.id, user_id=2)


def test_cancel_pending_and_running(store: TaskStore) -> None:
    a = store.create(1, "image", "images.demo", {})
    assert store.request_cancel(a.id, 1).state is Status.CANCELLED
    assert store.claim(a.id, "w1") is None
    b = store.create(1, "image", "images.demo", {})
    store.claim(b.id, "w1")
    assert store.request_cancel(b.id, 1).state is Status.RUNNING
    assert store.heartbeat(b.id, "w1") is True
    assert store.cancelled(b.id, "w1")
    assert store.get(b.id).state is Status.CANCELLED


def test_cancel_all_of_one_user(store: TaskStore) -> None:
    pending = [store.create(1, "image", "images.demo", {}) for _ in range(3)]
    running = store.create(1, "train", "training", {})
    store.claim(running.id, "w1")
    done = store.create(1, "image", "images.demo", {})
    store.claim(done.id, "w1")
    store.finish(done.id, "w1", {})
    other = store.create(2, "image", "images.demo", {})
    assert store.cancel_all_of(1) == 4
    assert [store.get(t.id).state for t in pending] == [Status.CANCELLED] * 3
    assert store.get(pending[0].id).error_msg == "cancelled: the account was disabled"
    assert store.heartbeat(running.id, "w1") is True  # its worker is told to stop
    assert store.get(done.id).state is Status.DONE
    assert (store.get(other.id).state, store.get(other.id).cancel_requested) == (
        Status.PENDING, False)
    assert store.cancel_all_of(1) == 1  # only the running one, still flagged, is left


def test_lost_workers_are_recovered_then_given_up(store: TaskStore) -> None:
    t = store.create(1, "train", "training", {})
    store.claim(t.id, "w1")
    expire_lease(store, t.id)
    redo, failed = store.recover()
    assert (redo, failed) == ([t.id], [])
    assert store.get(t.id).state is Status.PENDING
    # The dead worker coming back must not clobber anything.
    assert not store.finish(t.id, "w1", {"stale": True})
    store.claim(t.id, "w2")
    expire_lease(store, t.id)
    redo, failed = store.recover()
    assert (redo, failed) == ([], [t.id])
    gone = store.get(t.id)
    assert gone.state is Status.FAILED and "worker lost 2 times" in gone.error_msg


def test_orphans_of_a_previous_process_and_stale_messages(store: TaskStore) -> None:
    t = store.create(1, "image", "images.demo", {})
    store.claim(t.id, "embedded:/data:cpu:123")
    u = store.create(1, "image", "images.demo", {})
    store.mark_dispatched(u.id)
    redo, _ = store.recover(orphaned_worker_prefix="embedded:/data:")
    assert redo == [t.id]
    v = store.create(1, "image", "images.demo", {})  # created, message never sent
    redo, _ = store.recover(stale_pending_seconds=3600)
    assert redo == [v.id]
    redo, _ = store.recover(stale_pending_seconds=3600)
    assert redo == []  # each lost message is re-sent once, not on every sweep
    redo, _ = store.recover(stale_pending_seconds=-1)
    assert set(redo) == {t.id, u.id, v.id}


def test_release_returns_the_attempt(store: TaskStore) -> None:
    t = store.create(1, "image", "images.demo", {})
    store.claim(t.id, "w1")
    assert store.release(t.id, "w1", "shutting down")
    back = store.get(t.id)
    assert back.state is Status.PENDING and back.attempts == 0


def test_pages_count_in_the_same_query_and_the_queue_spans_users(store: TaskStore) -> None:
    ids = [store.create(1, "image" if i % 3 else "train", "q", {"i": i}).id for i in range(7)]
    other = store.create(2, "image", "q", {}).id
    store.claim(ids[1], "w1")
    page, total = store.page(1, ["image", "train"], None, 0, 4)
    assert [t.id for t in page] == ids[::-1][:4] and total == 7
    page, total = store.page(1, ["image"], None, 3, 4)
    assert [t.id for t in page] == [ids[1]] and total == 4
    assert store.page(1, ["image"], None, 10, 4) == ([], 4)
    assert store.page(1, None, Status.RUNNING)[1] == 1
    assert store.page(2, ["train"]) == ([], 0)

    queue, total = store.active(None, 0, 100)
    assert total == 8 and [t.id for t, _ in queue] == [*ids, other]
    assert queue[-1][1] == "c@d.co" and queue[1][0].state is Status.RUNNING
    assert [t.id for t, _ in store.active(["train"], 1, 1)[0]] == [ids[3]]


# --- issue 26: a row the database refuses never leaves a task running nor blocks recovery


def refuse_rows_of(*task_ids: str) -> events.Listener:
    """A listener that adds, beside each change of ``task_ids``, a row neither SQLite's nor
    PostgreSQL's driver can write (a lone surrogate cannot be encoded as UTF-8), as the
    webhook outbox once did for a URL that held one."""

    def listener(session: Session, change: events.TaskChange) -> None:
        if change.task_id in task_ids and change.event in (events.COMPLETED, events.REQUEUED):
            session.add(WebhookDelivery(
                id=f"msg_{change.event_id}", task_id=change.task_id, user_id=change.user_id,
                event=change.event, event_id=change.event_id, url="http://127.0.0.1:9/\ud800",
                state="pending", attempts=0, next_attempt_at=utcnow(), created_at=utcnow(),
                log=[], last_error=""))

    return listener


def test_a_task_whose_outcome_cannot_be_written_ends_failed(store: TaskStore) -> None:
    t = store.create(1, "image", "images.demo", {})
    store.listeners.append(refuse_rows_of(t.id))
    store.claim(t.id, "w1")
    assert store.finish(t.id, "w1", {"images": []})
    ended = store.get(t.id)
    assert ended.state is Status.FAILED and ended.result is None
    assert "could not store its outcome" in ended.error_msg
    assert store.claim(t.id, "w2") is None  # never re-run
    assert store.recover(stale_pending_seconds=-1) == ([], [])


def test_recovery_ends_what_it_cannot_write_and_recovers_the_rest(store: TaskStore) -> None:
    bad = store.create(1, "image", "images.demo", {})
    gone = store.create(1, "image", "images.demo", {})
    again = store.create(1, "image", "images.demo", {})
    store.listeners.append(refuse_rows_of(bad.id))
    for task in (bad, gone, again):
        store.claim(task.id, "w1")
        expire_lease(store, task.id)
    with store.db.session() as s:  # out of attempts: recovery ends them
        s.execute(update(Task).where(Task.id.in_([bad.id, gone.id]))
                  .values(attempts=store.max_attempts))
    redo, ended = store.recover()
    assert redo == [again.id] and set(ended) == {bad.id, gone.id}
    assert store.get(again.id).state is Status.PENDING
    assert "worker lost" in store.get(gone.id).error_msg
    failed = store.get(bad.id)
    assert failed.state is Status.FAILED and "could not store it" in failed.error_msg
    assert store.recover() == ([], [])  # nothing left to trip over on the next sweep
    # A task that could go back to pending but whose change cannot be written ends too.
    worse = store.create(1, "image", "images.demo", {})
    store.listeners.append(refuse_rows_of(worse.id))
    store.claim(worse.id, "w1")
    expire_lease(store, worse.id)
    assert store.recover() == ([], [worse.id])
    assert store.get(worse.id).state is Status.FAILED


def test_stored_text_that_cannot_be_encoded_reads_as_replacement(store: TaskStore) -> None:
    t = store.create(1, "image", "images.demo", {"prompt": "a \ud800 b\x00"})
    assert store.get(t.id).params["prompt"] == "a \ufffd b\ufffd"


def test_a_failure_keeps_the_field_it_is_about(store: TaskStore) -> None:
    """A front door answers such a task as the client's error by its field, never its text."""
    t = store.create(1, "caption", "captions.demo", {})
    store.claim(t.id, "w1")
    assert store.fail(t.id, "w1", "init_img: the image was deleted", field="init_img")
    failed = store.get(t.id)
    assert failed.state is Status.FAILED and failed.result == {"error_field": "init_img"}
