"""ronghe.runtime: ``serve`` and ``worker`` run one bootstrap (issue 27).

The serve half through an app's lifespan; the worker half in-process and, for the defects it
fixes, for real: a ``ronghe worker`` process on Redis and PostgreSQL enriches add_prompt's
and fusion's ``mh_add_prompt`` prompts from its own chat engine (the bundled model, or the
configured upstream).  ``RONGHE_CPU_THREADS`` on a worker: tests/jobs/test_celery.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ronghe.app import create_app
from ronghe.engines.cpu import budget
from ronghe.queues import Kind
from ronghe.runtime import Role, Runtime
from ronghe.services import Services
from ronghe.tasks import prompt
from tests.api.fusion.conftest import ask
from tests.conftest import DemoModel, free_port, make_account, make_settings
from tests.image_support import wait_done
from tests.upstream_support import chat_upstream

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = "a red circle on a blue background"


@pytest.fixture
def restore_budget() -> Iterator[None]:
    before = budget.total
    yield
    budget.configure(before)


def test_serve_runs_the_sender_registers_the_answers_and_sets_the_budget(
        tmp_path: Path, restore_budget: None) -> None:
    budget.configure(1)
    app = create_app(make_settings(tmp_path / "data", cpu_threads=3))
    services: Services = app.state.services
    runtime: Runtime = app.state.runtime
    assert runtime.role is Role.SERVE and runtime.role.sends_webhooks
    assert set(services.answers) >= {Kind.IMAGE, Kind.CAPTION, Kind.TRAIN, Kind.DOWNLOAD}
    assert services.chat is not None  # built with the app, loaded on first use
    with TestClient(app) as client:
        assert runtime.sender is not None and services.loop is not None
        assert budget.total == 3
        checks = client.get("/readyz").json()["checks"]
        assert checks["chat"]["ready"] is True
    assert runtime.sender is None and services.loop is None


def test_a_worker_has_chat_engines_on_a_loop_of_its_own_and_sends_no_webhooks(
        services: Services, restore_budget: None) -> None:
    budget.configure(1)
    services.settings.cpu_threads = 5
    runtime = Runtime(services, Role.WORKER)
    assert not runtime.role.sends_webhooks and services.answers == {}
    threads = {t.name for t in threading.enumerate()}
    with runtime.working():
        loop = services.loop
        assert loop is not None and loop.is_running() and services.chat is not None
        assert runtime.sender is None and budget.total == 5
        assert "ronghe-webhooks" not in {t.name for t in threading.enumerate()}

        async def running_loop() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        # A task's thread drives the engines on that loop, as add_prompt does.
        assert asyncio.run_coroutine_threadsafe(running_loop(), loop).result(5) is loop
    assert services.loop is None and loop.is_closed()
    assert {t.name for t in threading.enumerate()} - threads == set()


# --- a real ``ronghe worker`` on PostgreSQL and a private Redis


class Redis:
    """A private redis-server: image tasks go to the shared ``images.demo`` queue, which
    no other test's worker may take from."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Worker:
    def __init__(self, tmp: Path, shared: dict[str, Any]) -> None:
        self.log = tmp / "worker.log"
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        # The API's settings, as the environment of a worker that shares them.
        env = {f"RONGHE_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
               for key, value in shared.items()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ronghe.cli", "worker", "--data-dir", str(tmp / "worker")],
            env={**os.environ, "PYTHONPATH": pythonpath, **env},
            cwd=ROOT, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ScaleOut:
    """An API in this process (Celery dispatch) and one ``ronghe worker`` process."""

    def __init__(self, tmp: Path, pg_url: str, demo_model: DemoModel,
                 **chat: object) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server not installed")
        self.redis = Redis(tmp)
        shared: dict[str, Any] = {
            "database_url": pg_url, "broker_url": self.redis.url,
            "storage_url": f"file://{tmp / 'files'}", "secret_key": "w" * 40,
            "image_models": [demo_model.spec()], "cpu_threads": 1, **chat}
        try:
            self.app = create_app(make_settings(tmp / "api", **shared))  # migrates the schema
        except BaseException:
            self.redis.stop()
            raise
        self.client = TestClient(self.app).__enter__()
        self.account = make_account(self.app)
        self.worker = Worker(tmp, shared)

    def submit_and_wait(self, **fields: Any) -> dict[str, Any]:
        body = {"token": self.account.token, "prompt": ORIGINAL, "n_images": 1,
                "output_size": "64x64", "ddim_steps": 4, "add_prompt": True, **fields}
        response = self.client.post("/api/v1b/task_submit", json=body)
        assert response.status_code == 200, response.text
        try:
            return wait_done(self.client, self.account.token, response.json()["task_id"],
                             timeout=300)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log\n{self.worker.tail()}") from None

    def close(self) -> None:
        self.worker.stop()
        self.client.__exit__(None, None, None)
        self.redis.stop()


@pytest.fixture
def bundled_chat(tmp_path: Path, pg_url: str, demo_model: DemoModel) -> Iterator[ScaleOut]:
    cluster = ScaleOut(tmp_path, pg_url, demo_model)
    yield cluster
    cluster.close()


@pytest.mark.scaleout
def test_a_worker_enriches_add_prompt_and_mh_add_prompt_with_the_bundled_chat_model(
        bundled_chat: ScaleOut) -> None:
    c = bundled_chat
    done = c.submit_and_wait(select_seed=3)
    assert done["state"] == "done", f"{done}\n--- worker log\n{c.worker.tail()}"
    assert done["prompt"].startswith(ORIGINAL + ", ") and len(done["prompt"]) > len(ORIGINAL) + 3
    assert done["prompt_added"] is True
    worker_pid = str(c.worker.proc.pid)
    [task] = c.app.state.services.tasks.list(c.account.user_id)
    assert task.worker_id.split(":")[-2] == worker_pid  # the worker ran it, not this process

    # Fusion's drawing waits for the same kind of task, run by the same worker.
    body = ask(c.client, c.account, f"draw {ORIGINAL}", mh_add_prompt=True).json()
    assert body["code"] == 200 and body["data"]["usage"]["picture"] is True, body
    result = c.client.post("/api/v1b/task_result", json={
        "token": c.account.token, "task_id": body["data"]["task_id"]}).json()
    assert result["prompt"].startswith(ORIGINAL + ", ") and result["prompt_added"] is True
    assert len(result["prompt"]) > len(ORIGINAL) + 3


@pytest.mark.scaleout
def test_a_worker_asks_the_configured_upstream_for_the_details(
        tmp_path: Path, pg_url: str, demo_model: DemoModel) -> None:
    details = "soft morning light, watercolor texture"
    with chat_upstream(lambda _user: details) as upstream:
        spec = {"name": "remote", "engine": "upstream", "base_url": upstream.base_url}
        c = ScaleOut(tmp_path, pg_url, demo_model, chat_models=[spec],
                     chat_default_model="remote")
        try:
            done = c.submit_and_wait(select_seed=5)
        finally:
            c.close()
    assert done["state"] == "done", done
    assert done["prompt"] == f"{ORIGINAL}, {details}" and done["prompt_added"] is True
    # One request, from the worker: the API only checks that a chat engine is configured.
    [asked] = upstream.requests
    assert [m["role"] for m in asked["messages"]] == ["system", "user"]
    assert asked["messages"][0]["content"] == prompt.SYSTEM_PROMPT
    assert asked["messages"][1]["content"] == ORIGINAL
