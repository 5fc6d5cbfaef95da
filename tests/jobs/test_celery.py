"""Scale-out dispatch for real: Celery worker processes on Redis and RabbitMQ, PostgreSQL as
the task store.  A worker is SIGKILLed mid-task and the broker is stopped; nothing is lost."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ronghe.db.migrate import upgrade
from ronghe.jobs.celery_dispatch import CeleryDispatcher
from ronghe.jobs.status import Status
from ronghe.services import Services
from tests.conftest import free_port, make_settings

pytestmark = pytest.mark.scaleout
ROOT = Path(__file__).resolve().parents[2]
LEASE = 4.0


def reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0



class Cluster:
    """An 'API side' (Services + CeleryDispatcher in this process) and worker processes."""

    def __init__(self, tmp: Path, db_url: str, broker: str) -> None:
        self.tmp = tmp
        self.queue = f"images.t{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "RONGHE_DATABASE_URL": db_url, "RONGHE_BROKER_URL": broker,
                    "RONGHE_SECRET_KEY": "s" * 40, "RONGHE_TASK_LEASE_SECONDS": str(LEASE),
                    # Ahead of any inherited path (a worktree's src/), not instead of it.
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get(
                        "PYTHONPATH")]))}
        self.settings = make_settings(tmp / "api", database_url=db_url, broker_url=broker,
                                      secret_key="s" * 40, task_lease_seconds=LEASE)
        self.services = Services.build(self.settings)
        upgrade(self.services.db.engine)
        self.dispatcher = CeleryDispatcher(self.services, sweep_seconds=1.0)
        self.services.dispatcher = self.dispatcher
        self.user = self.services.auth.add_user("w@x.co", "longenough").id
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ronghe.cli", "worker", "--queues", self.queue,
             "--import", "tests.jobs.handlers", "--data-dir", str(self.tmp / name)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.workers.append(proc)
        return proc

    def submit(self, n: int, sleep: float = 0.05, user: int | None = None) -> str:
        task = self.services.tasks.create(user or self.user, "slow_count", self.queue,
                                          {"n": n, "sleep": sleep})
        self.dispatcher.submit(task)
        return task.id

    def wait(self, task_id: str, states: set[Status], timeout: float = 90) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.services.tasks.get(task_id)
            if t.state in states:
                return t
            time.sleep(0.1)
        logs = "\n".join(p.read_text()[-2000:] for p in self.tmp.glob("*.log"))
        raise AssertionError(f"{task_id} stuck in {self.services.tasks.get(task_id)}\n{logs}")

    def close(self) -> None:
        self.dispatcher.stop()
        for p in self.workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.workers:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.services.close()


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        if not reachable(6379):
            pytest.skip("Redis unreachable at 127.0.0.1:6379")
        return "redis://127.0.0.1:6379/0"
    if not reachable(5672):
        pytest.skip("RabbitMQ unreachable at 127.0.0.1:5672")
    return "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, broker: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path, pg_url, broker)
    yield c
    c.close()


def test_two_workers_share_work_and_survive_a_sigkill(cluster: Cluster) -> None:
    a = cluster.start_worker("w1")
    cluster.dispatcher.start()
    long_task = cluster.submit(n=120, sleep=0.05)
    running = cluster.wait(long_task, {Status.RUNNING})
    deadline = time.monotonic() + 30
    while cluster.services.tasks.get(long_task).progress < 0.1:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.1)
    cluster.start_worker("w2")
    os.kill(a.pid, signal.SIGKILL)  # mid-task: its lease stops being renewed
    a.wait()
    quick = [cluster.submit(n=3, sleep=0.01) for _ in range(3)]
    done = cluster.wait(long_task, {Status.DONE, Status.FAILED})
    assert done.state is Status.DONE, done  # type: ignore[attr-defined]
    assert done.attempts == 2 and done.result["attempt"] == 2  # type: ignore[attr-defined]
    assert done.result["pid"] != a.pid and running.attempts == 1  # type: ignore[attr-defined]
    for tid in quick:
        assert cluster.wait(tid, {Status.DONE}).state is Status.DONE  # type: ignore[attr-defined]


def test_a_backlog_of_one_user_does_not_starve_another(cluster: Cluster) -> None:
    """Issue 14: fairness on the Celery path too.  Messages queue in FIFO order in the
    broker, but each one runs the fairest pending task, so B's single task starts after at
    most one more of A's (the one worker's next) instead of after all 30."""
    other = cluster.services.auth.add_user("v@x.co", "longenough").id
    cluster.start_worker("w1")
    cluster.dispatcher.start()
    backlog = [cluster.submit(n=2, sleep=0.05) for _ in range(30)]
    cluster.wait(backlog[0], {Status.RUNNING, Status.DONE})
    mine = cluster.submit(n=1, sleep=0.01, user=other)
    done = cluster.wait(mine, {Status.DONE})
    tasks = [cluster.services.tasks.get(t) for t in backlog]
    submitted, started = cluster.services.tasks.get(mine).created_at, done.started_at  # type: ignore[attr-defined]
    overtaking = [t for t in tasks if t.started_at and submitted < t.started_at < started]
    assert len(overtaking) <= 1, [(t.id, t.started_at) for t in overtaking]
    assert sum(t.state is Status.PENDING for t in tasks) >= 20  # it did not wait for them


def test_a_worker_honours_RONGHE_CPU_THREADS(tmp_path: Path, pg_url: str) -> None:
    """Issue 27: the worker configures its CPU budget from settings.cpu_threads, as serve
    does; it used to keep the default of one thread per core."""
    if not reachable(6379):
        pytest.skip("Redis unreachable at 127.0.0.1:6379")
    # Unlike the default (one per core), so the budget shows it was configured.
    wanted = 1 if (os.cpu_count() or 1) > 1 else 2
    c = Cluster(tmp_path, pg_url, "redis://127.0.0.1:6379/0")
    try:
        c.env["RONGHE_CPU_THREADS"] = str(wanted)
        worker = c.start_worker("w1")
        task = c.services.tasks.create(c.user, "cpu_budget", c.queue, {})
        c.dispatcher.submit(task)
        done = c.wait(task.id, {Status.DONE, Status.FAILED})
        assert done.state is Status.DONE, done  # type: ignore[attr-defined]
        assert done.result == {"total": wanted, "torch_threads": wanted,  # type: ignore[attr-defined]
                               "pid": worker.pid}
        assert f"{wanted} CPU thread(s)" in (tmp_path / "w1.log").read_text()
    finally:
        c.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_a_broker_outage_delays_but_loses_nothing(tmp_path: Path, pg_url: str) -> None:
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", str(tmp_path)]
    redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    c = None
    try:
        deadline = time.monotonic() + 10
        while not reachable(port):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        c = Cluster(tmp_path, pg_url, f"redis://127.0.0.1:{port}/0")
        c.start_worker("w1")
        c.dispatcher.start()
        first = c.submit(n=2, sleep=0.01)
        assert c.wait(first, {Status.DONE}).state is Status.DONE  # type: ignore[attr-defined]

        redis.terminate()
        redis.wait()
        during = c.submit(n=2, sleep=0.01)  # the broker is down: stays pending, unsent
        assert c.services.tasks.get(during).state is Status.PENDING
        time.sleep(2)
        redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        assert c.wait(during, {Status.DONE}, timeout=120).state is Status.DONE  # type: ignore[attr-defined]
    finally:
        if c:
            c.close()
        redis.terminate()
        redis.wait()
