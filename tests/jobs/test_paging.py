"""A user's task pages (ronghe.jobs.paging) on SQLite and PostgreSQL: by offset through the
index's ids, and after a position, against the plain OFFSET query they replaced."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from ronghe.auth.service import AuthService
from ronghe.db import Database, utcnow
from ronghe.db.migrate import upgrade
from ronghe.jobs.models import Task
from ronghe.jobs.paging import Position
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskStore
from tests.conftest import make_settings

FILTERS: list[tuple[list[str] | None, Status | None]] = [
    (["image"], None), (None, None), (["image"], Status.DONE), (None, Status.FAILED),
    (["image", "train"], None)]


@pytest.fixture
def store(db_url: str, tmp_path) -> Iterator[TaskStore]:  # type: ignore[no-untyped-def]
    db = Database(db_url)
    upgrade(db.engine)
    auth = AuthService(db, make_settings(tmp_path))
    auth.add_user("a@b.co", "longenough")
    auth.add_user("c@d.co", "longenough")
    yield TaskStore(db)
    db.dispose()


def fill(store: TaskStore) -> None:
    """41 tasks of user 1 in mixed kinds and states, many sharing a creation time (the id
    breaks those ties), and some of user 2's in between."""
    start = utcnow() - timedelta(hours=1)
    for i in range(41):
        task = store.create(1, "train" if i % 4 == 0 else "image", "q", {"i": i})
        if i % 5 == 1:
            store.create(2, "image", "q", {})
        state = Status.FAILED if i % 3 == 0 else Status.DONE if i % 3 == 1 else Status.PENDING
        with store.db.session() as s:
            # Groups of up to 4 tasks at one instant, and the groups out of insertion order.
            moment = start + timedelta(seconds=(i // 4) * 7 % 11, microseconds=5)
            s.execute(update(Task).where(Task.id == task.id)
                      .values(created_at=moment, state=state.value))


def plain_offset(store: TaskStore, kinds: list[str] | None, state: Status | None,
                 offset: int, limit: int) -> list[str]:
    """The query task_list ran before (SELECT * ... ORDER BY ... OFFSET): the reference."""
    cond: list[Any] = [Task.user_id == 1]
    if kinds:
        cond.append(Task.kind.in_(kinds))
    if state is not None:
        cond.append(Task.state == state.value)
    with store.db.reading() as c:
        return list(c.scalars(select(Task.id).where(*cond)
                              .order_by(Task.created_at.desc(), Task.id.desc())
                              .offset(offset).limit(limit)))


def test_pages_by_offset_and_after_a_position_match_plain_offset(store: TaskStore) -> None:
    fill(store)
    for kinds, state in FILTERS:
        everything = plain_offset(store, kinds, state, 0, 1000)
        assert len(everything) >= 10
        for per_page in (1, 3, 7, 20):
            walked: list[str] = []
            after = None
            for page in range(len(everything) // per_page + 2):
                ref = plain_offset(store, kinds, state, page * per_page, per_page)
                found = store.listing(1, kinds, state, page * per_page, per_page)
                assert [t.id for t in found.tasks] == ref, (kinds, state, per_page, page)
                assert (found.total, found.before) == (len(everything), page * per_page)
                # The same page reached from the previous page's last task.
                keyed = store.listing(1, kinds, state, limit=per_page, after=after)
                assert [t.id for t in keyed.tasks] == ref, (kinds, state, per_page, page)
                assert keyed.total == len(everything)
                assert keyed.before == min(page * per_page, len(everything))
                walked += [t.id for t in keyed.tasks]
                after = Position.of(keyed.tasks[-1]) if keyed.tasks else after
            assert walked == everything
    assert store.page(1, ["image"], None, 0, 5) == (
        store.listing(1, ["image"], None, 0, 5).tasks, store.listing(1, ["image"]).total)


def test_a_position_whose_task_is_gone_still_pages_on(store: TaskStore) -> None:
    fill(store)
    first = store.listing(1, None, None, 0, 5)
    gone = first.tasks[-1]
    with store.db.session() as s:
        s.query(Task).filter(Task.id == gone.id).delete()
    after = store.listing(1, None, None, limit=5, after=Position.of(gone))
    assert [t.id for t in after.tasks] == plain_offset(store, None, None, 4, 5)
    assert after.before == 4


def test_keyset_pages_cover_every_task_once_while_new_ones_arrive(store: TaskStore) -> None:
    fill(store)
    existing = plain_offset(store, None, None, 0, 1000)
    stop, started = threading.Event(), threading.Event()
    added: list[str] = []

    def submitter() -> None:
        while not stop.is_set() and len(added) < 500:
            added.append(store.create(1, "image", "q", {"new": True}).id)
            if len(added) == 5:
                started.set()
        started.set()

    worker = threading.Thread(target=submitter)
    worker.start()
    try:
        assert started.wait(60)
        seen: list[str] = []
        after = None
        while True:
            page = store.listing(1, None, None, limit=4, after=after)
            if not page.tasks:
                break
            seen += [t.id for t in page.tasks]
            after = Position.of(page.tasks[-1])
    finally:
        stop.set()
        worker.join()
    # The first page is the newest tasks, submitted ones among them; every later page
    # continues below the last one shown, so tasks submitted meanwhile never shift it.
    new = set(added)
    assert len(set(seen)) == len(seen)
    assert [t for t in seen if t not in new] == existing
    assert all(t in new for t in seen[:4])


def test_sqlite_finds_a_page_s_ids_in_the_covering_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(db.engine)
    try:
        with db.engine.connect() as c:
            for cols in ("kind = 'image' AND state = 'done'", "state = 'done'"):
                plan = " | ".join(row[-1] for row in c.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE user_id = 1 AND {cols} "
                    "ORDER BY created_at DESC, id DESC LIMIT 20 OFFSET 9980"))
                assert "USING COVERING INDEX ix_tasks_user" in plan, plan
                assert "TEMP B-TREE" not in plan, plan  # no sort
    finally:
        db.dispose()
