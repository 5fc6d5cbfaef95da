"""Fairness, measured: how long user B's single task waits behind user A's backlog.

Embedded (the in-process worker on SQLite) and scale-out (one Celery worker on Redis,
PostgreSQL at ``--database-url``): A queues ``--backlog`` short tasks (``slow_count``, two
steps of ``--step`` seconds), then B submits one.  Reported: how many of A's tasks started
between B's submit and B's start, and B's wait in seconds, against B alone on an idle
queue in the same run.

    python bench/fairness.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ronghe.db.migrate import upgrade
from ronghe.jobs.dispatch import InProcessDispatcher
from ronghe.jobs.status import Status
from ronghe.services import Services
from ronghe.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests.jobs.handlers  # noqa: E402, F401  (registers slow_count)


def wait(svc: Services, task_id: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = svc.tasks.get(task_id)
        if task.state is Status.DONE:
            return task
        time.sleep(0.02)
    raise RuntimeError(f"{task_id} did not finish")


def run(svc: Services, submit: Any, backlog: int, step: float) -> tuple[int, float, float]:
    a = svc.auth.add_user(f"a{uuid.uuid4().hex[:6]}@b.co", "longenough").id
    b = svc.auth.add_user(f"b{uuid.uuid4().hex[:6]}@b.co", "longenough").id
    wait(svc, submit(b, step))  # warm-up: a Celery worker's start is not B's wait
    alone = submit(b, step)
    start = time.monotonic()
    wait(svc, alone)
    baseline = time.monotonic() - start
    ids = [submit(a, step) for _ in range(backlog)]
    while svc.tasks.get(ids[0]).state is Status.PENDING:
        time.sleep(0.01)
    mine = submit(b, step)
    start = time.monotonic()
    done = wait(svc, mine)
    waited = time.monotonic() - start
    created = svc.tasks.get(mine).created_at
    ahead = sum(1 for t in (svc.tasks.get(i) for i in ids)
                if t.started_at and created < t.started_at < done.started_at)
    return ahead, waited, baseline


def embedded(args: argparse.Namespace) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        svc = Services.build(Settings(data_dir=Path(tmp), max_pending_tasks_per_user=0,
                                      task_submit_rate_per_minute=0))
        upgrade(svc.db.engine)
        worker = InProcessDispatcher(svc.tasks, poll_seconds=0.05)
        worker.start()

        def submit(user: int, step: float) -> str:
            task = svc.tasks.create(user, "slow_count", "images.bench", {"n": 2, "sleep": step})
            worker.submit(task)
            return task.id

        try:
            return run(svc, submit, args.backlog, args.step)
        finally:
            worker.stop()
            svc.close()


def celery(args: argparse.Namespace) -> tuple[int, float, float]:
    from ronghe.jobs.celery_dispatch import CeleryDispatcher

    queue = f"images.bench{uuid.uuid4().hex[:6]}"
    broker = "redis://127.0.0.1:6379/0"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "api", database_url=args.database_url,
                            broker_url=broker, secret_key="s" * 40,
                            max_pending_tasks_per_user=0, task_submit_rate_per_minute=0)
        svc = Services.build(settings)
        upgrade(svc.db.engine)
        dispatcher = CeleryDispatcher(svc)
        env = {**os.environ, "RONGHE_DATABASE_URL": args.database_url,
               "RONGHE_BROKER_URL": broker, "RONGHE_SECRET_KEY": "s" * 40,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        worker = subprocess.Popen(
            [sys.executable, "-m", "ronghe.cli", "worker", "--queues", queue, "--import",
             "tests.jobs.handlers", "--data-dir", str(Path(tmp) / "w")], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)

        def submit(user: int, step: float) -> str:
            task = svc.tasks.create(user, "slow_count", queue, {"n": 2, "sleep": step})
            dispatcher.submit(task)
            return task.id

        try:
            return run(svc, submit, args.backlog, args.step)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            svc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backlog", type=int, default=400)
    ap.add_argument("--step", type=float, default=0.05)
    ap.add_argument("--database-url", help="PostgreSQL for the Celery run (skipped without)")
    args = ap.parse_args()
    rows = [("embedded (SQLite)", embedded(args))]
    if args.database_url:
        rows.append(("Celery on Redis (PostgreSQL)", celery(args)))
    print(f"\nA's backlog: {args.backlog} tasks; B submits one")
    print(f"{'path':<30}{'A tasks started first':>22}{'B wait s':>10}{'B alone s':>11}")
    for name, (ahead, waited, baseline) in rows:
        print(f"{name:<30}{ahead:>22}{waited:>10.2f}{baseline:>11.2f}")


if __name__ == "__main__":
    main()
