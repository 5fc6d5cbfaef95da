"""Durability: kill the server mid-generation, start it again, the task still completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from ronghe.settings import Settings
from tests.conftest import PASSWORD, DemoModel, free_port, wait_healthy


def start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "serve", "--config",
                                 str(config), "--port", str(port)], stdout=out, stderr=out,
                                env=env)
    wait_healthy(port, proc, 90, log)
    return proc


# Issue 12: with a data dir of 133+ characters the restarted server did not recognise its
# previous run's task (worker ids are cut to 128 characters), which stayed running.
@pytest.mark.parametrize("data_name", ["data", "long-" + "d" * 140], ids=["short", "long"])
def test_a_task_running_when_the_server_is_killed_completes_after_restart(
        tmp_path: Path, demo_model: DemoModel, data_name: str) -> None:
    data = tmp_path / data_name
    assert data_name == "data" or len(str(data)) > 133
    config = tmp_path / "ronghe.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(data), "image_models": [demo_model.spec()], "cpu_threads": 1,
        # A lease longer than the test: only recognising its own lost task brings it back.
        "chat_models": [], "log_level": "warning", "task_lease_seconds": 600}))
    services = Services.build(Settings(config_file=config))
    upgrade(services.db.engine)
    services.auth.add_user("carol@example.com", PASSWORD)
    token = services.auth.issue_token("carol@example.com").secret
    services.close()

    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}/api/v1b"
    server = start(config, port, log)
    try:
        task_id = httpx.post(f"{base}/task_submit", timeout=10, json={
            "token": token, "prompt": "a red circle on a blue background", "n_images": 4,
            "ddim_steps": 40, "output_size": "64x64", "select_seed": 5}).json()["task_id"]
        deadline = time.monotonic() + 60
        while True:
            body = httpx.post(f"{base}/task_result", timeout=10,
                              json={"token": token, "task_id": task_id}).json()
            if body["state"] == "running" and body["progress"] > 0.1:
                break
            assert body["state"] in ("pending", "running") and time.monotonic() < deadline, body
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)

        server = start(config, port, log)
        deadline = time.monotonic() + 120
        while True:
            body = httpx.post(f"{base}/task_result", timeout=10,
                              json={"token": token, "task_id": task_id}).json()
            if body["state"] not in ("pending", "running"):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert body["state"] == "done", body
        assert [im["seed"] for im in body["images"]] == list(range(5, 9))
        image = httpx.get(body["images"][0]["large"], timeout=10)
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    finally:
        server.kill()
        server.wait(timeout=10)
    services = Services.build(Settings(config_file=config))
    task = services.tasks.get(task_id)
    services.close()
    assert task.attempts == 2  # killed once, finished on the second run
