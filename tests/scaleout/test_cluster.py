"""Issue 7's acceptance: a real scale-out cluster on this machine.

One API process (``ronghe serve`` with a broker) and two worker processes (``ronghe worker``),
PostgreSQL as the task store, a private Redis as the broker (so the test may stop it), and an
S3-compatible store (moto's server) shared by all.  Generation and training tasks go in
through HTTP; the worker running the training is SIGKILLed mid-task and the broker is stopped
for a while; every task still ends done.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import free_port
from tests.training_support import concept_images, make_dataset, submit, upload

pytestmark = [
    pytest.mark.scaleout,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]
ROOT = Path(__file__).resolve().parents[2]
LEASE = 6


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self.popen = subprocess.Popen([sys.executable, "-m", "ronghe.cli", *args], env=env,
                                      cwd=ROOT, stdout=self.log.open("wb"),
                                      stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Redis:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(tmp)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL)
        wait_until(lambda: _port_open(self.port), 10, "redis did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: Any, timeout: float, what: str, logs: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = ""
            if logs:
                tail = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                                 for p in sorted(logs.glob("*.log")))
            raise AssertionError(f"{what}\n{tail}")
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, s3_endpoint: str) -> Iterator[dict[str, Any]]:
    bucket = f"cluster-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test").create_bucket(
                     Bucket=bucket)
    redis = Redis(tmp_path)
    redis.start()
    logs = tmp_path / "logs"
    logs.mkdir()
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath,
           "RONGHE_DATABASE_URL": pg_url,
           "RONGHE_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
           "RONGHE_STORAGE_URL": f"s3://{bucket}/files",
           "RONGHE_S3_ENDPOINT_URL": s3_endpoint, "RONGHE_S3_REGION": "us-east-1",
           "RONGHE_S3_ACCESS_KEY_ID": "test", "RONGHE_S3_SECRET_ACCESS_KEY": "test",
           "RONGHE_SECRET_KEY": "k" * 48, "RONGHE_TASK_LEASE_SECONDS": str(LEASE),
           "RONGHE_CPU_THREADS": "1", "RONGHE_LOGIN_DELAY_SECONDS": "0",
           "RONGHE_USER_PASSWORD": "cluster-pass"}
    subprocess.run([sys.executable, "-m", "ronghe.cli", "user", "add", "--email", "c@x.co",
                    "--data-dir", str(tmp_path / "admin")], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    port = free_port()
    procs = {"api": Proc("api", ["serve", "--port", str(port), "--data-dir",
                                 str(tmp_path / "api")], env, logs)}
    for name in ("w1", "w2"):
        procs[name] = Proc(name, ["worker", "--data-dir", str(tmp_path / name)], env, logs)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    wait_until(lambda: _healthy(client), 60, "API did not start", logs)
    token = client.post("/api/v1b/get_token",
                        json={"email": "c@x.co", "password": "cluster-pass"}).json()["token"]
    db = create_engine(pg_url)
    try:
        yield {"client": client, "token": token, "procs": procs, "redis": redis, "db": db,
               "logs": logs}
    finally:
        client.close()
        for p in procs.values():
            p.stop()
        redis.stop()
        db.dispose()


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _generate(c: dict[str, Any], seed: int) -> str:
    r = c["client"].post("/api/v1b/task_submit", json={
        "token": c["token"], "prompt": "a red circle on a blue background", "n_images": 1,
        "select_seed": seed, "output_size": "64x64", "ddim_steps": 8})
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def _task_row(c: dict[str, Any], task_id: str) -> Any:
    with c["db"].connect() as conn:
        return conn.execute(text("SELECT state, worker_id, attempts, progress FROM tasks "
                                 "WHERE id = :id"), {"id": task_id}).one()


def test_generation_and_training_survive_a_killed_worker_and_a_broker_outage(
        cluster: dict[str, Any]) -> None:
    c, client, token, logs = cluster, cluster["client"], cluster["token"], cluster["logs"]
    urls = upload(client, token, concept_images(6))
    dataset = make_dataset(client, token, urls)
    train_id = submit(client, token, [dataset], name="cluster-lora", steps=200)
    gen_ids = [_generate(c, seed) for seed in (1, 2, 3)]

    # Kill whichever worker runs the training, once it is well under way.
    def training_under_way() -> Any:
        row = _task_row(c, train_id)
        return row if row.state == "running" and row.progress > 0.1 else None

    row = wait_until(training_under_way, 240, "training never got going", logs)
    pid = int(row.worker_id.split(":")[-2])
    victim = next(n for n, p in c["procs"].items() if p.popen.pid == pid)
    os.kill(pid, signal.SIGKILL)
    c["procs"][victim].popen.wait()

    # Broker outage: submissions still succeed (the tasks wait), then the broker returns.
    c["redis"].stop()
    gen_ids += [_generate(c, seed) for seed in (4, 5)]
    time.sleep(3)
    c["redis"].start()

    for task_id in gen_ids:
        def finished(task_id: str = task_id) -> Any:
            body = client.post("/api/v1b/task_result",
                               json={"token": token, "task_id": task_id}).json()
            return body if body["state"] in ("done", "failed", "cancelled") else None

        body = wait_until(finished, 300, f"generation {task_id} not finished", logs)
        assert body["state"] == "done", body
        image = httpx.get(body["images"][0]["large"], timeout=30)
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"  # a JPEG from S3

    def trained() -> Any:
        body = client.post("/api/v1b/train_progress",
                           json={"token": token, "task_id": train_id}).json()
        return body if body["state"] in ("done", "failed", "cancelled") else None

    body = wait_until(trained, 600, "training not finished", logs)
    assert body["state"] == "done" and body["training_progress"] == 1.0, body
    final = _task_row(c, train_id)
    assert final.attempts == 2 and int(final.worker_id.split(":")[-2]) != pid
    # The trained model is usable by name on the surviving worker.
    r = client.post("/api/v1b/task_submit", json={
        "token": token, "model_name": "cluster-lora", "prompt": "purple star style",
        "n_images": 1, "output_size": "64x64", "ddim_steps": 8})
    assert r.status_code == 200, r.text
