"""Durability: kill the server mid-generation, start it again, the task still completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import update as sa_update

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


# Issue 26: a task whose webhook URL held a lone surrogate could not be finished nor
# recovered, and every start-up (which recovers) failed after that.  Such a URL is refused
# at the door now; a row of that kind left by an older version must not stop the server.
def test_a_task_that_cannot_be_recovered_never_stops_the_server_starting(
        tmp_path: Path, demo_model: DemoModel) -> None:
    from ronghe.jobs import stored_instance_id
    from ronghe.jobs.models import Task

    data = tmp_path / "data"
    config = tmp_path / "ronghe.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(data), "image_models": [demo_model.spec()], "cpu_threads": 1,
        "chat_models": [], "log_level": "warning", "task_lease_seconds": 600,
        "webhook_allowed_networks": ["127.0.0.1/32"]}))
    services = Services.build(Settings(config_file=config))
    upgrade(services.db.engine)
    user = services.auth.add_user("carol@example.com", PASSWORD)
    token = services.auth.issue_token("carol@example.com").secret
    services.close()
    job = {"token": token, "prompt": "a red circle on a blue background", "n_images": 1,
           "ddim_steps": 4, "output_size": "64x64"}

    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}/api/v1b"
    server = start(config, port, log)
    try:
        # The door: the request that once bricked the server is a 400 naming the field.
        raw = json.dumps({"token": token, "prompt": "a red circle",
                          "webhook": "http://127.0.0.1:9/@"}).replace("@", "\\ud800")
        refused = httpx.post(f"{base}/task_submit", content=raw, timeout=10,
                             headers={"content-type": "application/json"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["msg"].startswith("webhook: contains a lone surrogate")
        done_id = httpx.post(f"{base}/task_submit", json=job, timeout=10).json()["task_id"]
        deadline = time.monotonic() + 60
        while httpx.post(f"{base}/task_result", json={"token": token, "task_id": done_id},
                         timeout=10).json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    # What an older version left behind: two tasks running on this instance when it
    # stopped, one carrying the unwritable webhook and out of attempts.
    services = Services.build(Settings(config_file=config))
    params = services.tasks.get(done_id).params
    owner = f"embedded:{stored_instance_id(data)}:cpu:1"
    bad = services.tasks.create(user.id, "image", "images.demo", {
        **params, "prompt": "a red \ud800 circle",
        "webhook": {"url": "http://127.0.0.1:9/\ud800", "events": ["completed"]}})
    good = services.tasks.create(user.id, "image", "images.demo", params)
    for task in (bad, good):
        services.tasks.claim(task.id, owner)
    with services.db.session() as s:
        s.execute(sa_update(Task).where(Task.id == bad.id).values(attempts=3))
    services.close()

    server = start(config, port, log)  # raises when the server does not come up
    try:
        deadline = time.monotonic() + 60
        while True:
            states = {t: httpx.post(f"{base}/task_result", timeout=10,
                                    json={"token": token, "task_id": t}).json()
                      for t in (bad.id, good.id)}
            if states[good.id]["state"] == "done":
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.2)
        # Read back with U+FFFD for the surrogate, its rows are writable again: it ends as
        # any task out of attempts does (tests/jobs/test_store.py ends rows that are not).
        assert states[bad.id]["state"] == "failed"
        assert states[bad.id]["error_msg"] == "worker lost 3 times; giving up"
        listed = httpx.post(f"{base}/task_list", json={"token": token}, timeout=10)
        assert listed.status_code == 200 and bad.id in listed.text, listed.text
        # The owner's event stream carries the task with the stored surrogate prompt.
        with httpx.stream("GET", f"{base}/task_events", params={"token": token},
                          headers={"Last-Event-ID": "0"}, timeout=10) as events:
            assert events.status_code == 200
            prompt = next(json.loads(line[5:])["prompt"] for line in events.iter_lines()
                          if line.startswith("data:") and bad.id in line)
        assert prompt == "a red \ufffd circle"
        server.send_signal(signal.SIGTERM)  # a clean stop, then a clean start again
        server.wait(timeout=30)
        server = start(config, port, log)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        server.kill()
        server.wait(timeout=10)
    assert "Application startup failed" not in log.read_text(errors="replace")
