"""Queue cost as the task table grows: a full database against an empty one, in one run.

For SQLite (a fresh data directory) and PostgreSQL (``--database-url``, a fresh database is
created and dropped), two databases each:

- **empty**: the measuring user and nothing else;
- **full**: ``--tasks`` task rows (default 100,000), ``--pending`` of them pending (default
  10,000) spread over ``--users`` users (default 100); the measuring user is a heavy one
  with a tenth of all rows, so ``task_list`` page 500 (x 20) is the end of their history.

and times through the app in this process (no worker running, so nothing drains):
``task_submit`` and ``task_result`` p50/p99, ``task_list`` page 1 and page 500 (by page
number, and by the cursor page 499 ends at), and the
dispatcher's pick (``TaskStore.fair_order``: the ids of the next tasks in fair order) and
pick + claim (``claim_next``, then released).  For comparison it also times the pick the
issue suggested, a ``ROW_NUMBER() OVER (PARTITION BY user_id)`` round-robin over every
pending row, which Ronghe does not use.  Every SELECT the measured calls ran is then shown
with its plan (``EXPLAIN QUERY PLAN`` / ``EXPLAIN (ANALYZE, BUFFERS)``) on the full database.

Named task_queue.py, not the issue's queue.py: a bench/queue.py shadows the standard
library's ``queue`` for every script run from bench/ (torch imports it).

    python bench/task_queue.py                       # SQLite
    python bench/task_queue.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url

from ronghe import logs
from ronghe.api.images import cursors
from ronghe.app import create_app
from ronghe.db import utcnow
from ronghe.jobs.models import Task
from ronghe.jobs.paging import Position
from ronghe.settings import Settings

BODY = {"prompt": "a red circle on a blue background", "n_images": 1,
        "output_size": "64x64", "ddim_steps": 4}
# Runs of each call are split into this many blocks, alternating between the databases.
BLOCKS = 10
WINDOW_PICK = text(
    "SELECT id FROM (SELECT id, created_at, ROW_NUMBER() OVER (PARTITION BY user_id "
    "ORDER BY created_at) AS rn FROM tasks WHERE state = 'pending') AS ranked "
    "ORDER BY rn, created_at LIMIT 8")


def seed(services: Any, me: int, tasks: int, pending: int, users: int) -> None:
    """Rows straight into the table (the API would rate-limit a seeding this fast)."""
    others = [services.auth.add_user(f"u{i}@bench.co", "longenough").id
              for i in range(users - 1)]
    now = utcnow()
    rows: list[dict[str, Any]] = []
    mine_total = tasks // 10
    for i in range(tasks):
        user = me if i < mine_total else others[i % len(others)]
        rows.append({"id": str(uuid.uuid4()), "user_id": user, "kind": "image",
                     "queue": "images.demo", "state": "done", "params": {"prompt": "x"},
                     "result": {"images": []}, "error_msg": "", "progress": 1.0,
                     "attempts": 1, "cancel_requested": False, "fair_key": 0,
                     "created_at": now - timedelta(seconds=tasks - i),
                     "updated_at": now})
    # The newest `pending` rows are pending, evenly over all users; each user's in rounds.
    owners = [me, *others]
    rounds: dict[int, int] = {}
    for k, row in enumerate(rows[-pending:]):
        row["user_id"] = owners[k % len(owners)]
        row["state"], row["result"], row["progress"], row["attempts"] = "pending", None, 0, 0
        row["fair_key"] = rounds[row["user_id"]] = rounds.get(row["user_id"], -1) + 1
    with services.db.engine.begin() as c:
        for start in range(0, len(rows), 5000):
            c.execute(insert(Task), rows[start:start + 5000])
    if services.db.engine.dialect.name == "postgresql":
        # What autovacuum does to a table that took 100,000 inserts (PostgreSQL 13+ vacuums
        # after inserts, too: autovacuum_vacuum_insert_threshold): planner statistics, and
        # the visibility map that lets index-only scans skip the heap.  Without it the first
        # minutes after a bulk load measure a table production never runs on for long.
        with services.db.engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE tasks")


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


@contextmanager
def recording(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and all(
                statement != known for known, _ in seen):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def prepare(settings: Settings, fill: bool, args: argparse.Namespace
            ) -> tuple[Any, dict[str, Callable[[], Any]]]:
    """An app on its own database (filled or not) and the calls to time against it."""
    app = create_app(settings)
    svc = app.state.services
    me = svc.auth.add_user("me@bench.co", "longenough")
    token = svc.auth.issue_token("me@bench.co").secret
    if fill:
        seed(svc, me.id, args.tasks, args.pending, args.users)
    client = TestClient(app)  # no lifespan: no worker drains the queue
    task_id = client.post("/api/v1b/task_submit",
                          json={**BODY, "token": token}).json()["task_id"]
    # Where page 499 ends (the empty database: its one task), for the keyset page 500.
    last = (svc.tasks.listing(me.id, ["image"], None, 499 * 20 - 1, 1).tasks
            or svc.tasks.listing(me.id, ["image"], None, 0, 1).tasks)
    cursor = cursors.encode(Position.of(last[0]))
    return svc, {
        "task_submit": lambda: client.post("/api/v1b/task_submit",
                                           json={**BODY, "token": token}),
        "task_result": lambda: client.post("/api/v1b/task_result",
                                           json={"task_id": task_id, "token": token}),
        "task_list p1": lambda: client.post("/api/v1b/task_list",
                                            json={"token": token, "page": 1}),
        "task_list p500": lambda: client.post("/api/v1b/task_list",
                                              json={"token": token, "page": 500}),
        "task_list p500 cursor": lambda: client.post("/api/v1b/task_list",
                                                     json={"token": token, "cursor": cursor}),
        "pick": lambda: svc.tasks.fair_order(),
        "pick+claim": lambda: pick_and_release(svc),
        "window pick (unused)": lambda: window_pick(svc),
    }


def measure(sides: dict[str, tuple[Any, dict[str, Callable[[], Any]]]],
            args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Each call timed on both databases in alternating blocks of runs, so that the load of
    a shared machine, which changes by the second, falls on both sides alike."""
    table: dict[str, dict[str, float]] = {label: {} for label in sides}
    for name in next(iter(sides.values()))[1]:
        runs = args.runs if name != "task_submit" else min(args.runs, 100)
        samples: dict[str, list[float]] = {label: [] for label in sides}
        for block in range(BLOCKS):
            order = list(sides) if block % 2 == 0 else list(sides)[::-1]
            for label in order:
                samples[label] += timed(sides[label][1][name], max(1, runs // BLOCKS))
        for label, ms in samples.items():
            table[label][f"{name} p50"] = statistics.median(ms)
            table[label][f"{name} p99"] = p(ms, 0.99)
    return table


def record_plans(svc: Any, calls: dict[str, Callable[[], Any]]) -> list[str]:
    plans: dict[str, Any] = {}
    for name, fn in calls.items():
        with recording(svc.db.engine) as seen:
            fn()
        plans[name] = seen
    return explain(svc.db.engine, plans)


def pick_and_release(svc: Any) -> None:
    task = svc.tasks.claim_next("bench-worker")
    assert task is not None
    svc.tasks.release(task.id, "bench-worker", "bench")


def window_pick(svc: Any) -> list[str]:
    with svc.db.reading() as c:
        return list(c.scalars(WINDOW_PICK))


def explain(engine: Any, plans: dict[str, Any]) -> list[str]:
    """Each recorded SELECT's plan, with the parameters it actually ran with."""
    out: list[str] = []
    sqlite = engine.dialect.name == "sqlite"
    done: set[str] = set()
    for name, statements in plans.items():
        for sql, params in statements:
            if sql in done or "alembic" in sql:
                continue
            done.add(sql)
            with engine.connect() as c:
                cur = c.connection.dbapi_connection.cursor()
                prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
                cur.execute(prefix + sql, params)
                lines = [row[-1] if sqlite else row[0] for row in cur.fetchall()]
            out.append(f"-- {name}\n{' '.join(sql.split())}\n  " + "\n  ".join(lines))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", help="a PostgreSQL server (a database is created)")
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--pending", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--plans", action="store_true", help="print the query plans")
    args = ap.parse_args()
    logs.configure("warning")  # as the server runs: no line per request
    with ExitStack() as stack:
        sides = {}
        for label, fill in (("empty", False), ("full", True)):
            url = stack.enter_context(database(args.database_url))
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            settings = Settings(data_dir=Path(tmp), database_url=url,
                                max_pending_tasks_per_user=0, task_submit_rate_per_minute=0,
                                log_level="warning", chat_models=[])
            sides[label] = prepare(settings, fill, args)
            stack.callback(sides[label][0].close)
        table = measure(sides, args)
        plans = record_plans(*sides["full"]) if args.plans else []
    kind = "PostgreSQL" if args.database_url else "SQLite"
    print(f"\n{kind}: {args.tasks:,} tasks, {args.pending:,} pending over {args.users} users")
    print(f"{'ms':<28}{'empty':>9}{'full':>9}{'ratio':>8}")
    for key in table["empty"]:
        e, f = table["empty"][key], table["full"][key]
        print(f"{key:<28}{e:>9.2f}{f:>9.2f}{f / e:>8.2f}")
    if plans:
        print("\nPlans on the full database:\n")
        print("\n\n".join(plans))


@contextmanager
def database(url: str | None) -> Iterator[str | None]:
    if not url:
        yield None
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"ronghe_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
