"""GET /api/v1b/task_events: server-sent events of one's own tasks, across two API
processes on PostgreSQL (a task submitted to one is streamed by the other), resumed with
Last-Event-ID, with heartbeats."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from ronghe.settings import Settings
from tests.api.images.test_recovery import start
from tests.conftest import PASSWORD, DemoModel, free_port

SECRET = "s" * 40
TASK = {"prompt": "a red circle on a blue background", "n_images": 2, "ddim_steps": 10,
        "output_size": "64x64"}


def read_events(response: httpx.Response, until: Any, timeout: float) -> list[dict[str, Any]]:
    """SSE frames ({id, event, data} or {comment}) until ``until(frames)`` holds."""
    frames: list[dict[str, Any]] = []
    frame: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if line == "":
            if frame:
                frames.append(frame)
                frame = {}
                if until(frames):
                    return frames
        elif line.startswith(":"):
            frame.setdefault("comment", line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            frame[name] = json.loads(value) if name == "data" else value
        assert time.monotonic() < deadline, f"stream did not get there: {frames}"
    raise AssertionError(f"stream ended: {frames}")


def tasks_done(task_ids: set[str]) -> Any:
    def check(frames: list[dict[str, Any]]) -> bool:
        done = {f["data"]["task_id"] for f in frames
                if f.get("event") == "task" and f["data"]["state"] == "done"}
        return task_ids <= done

    return check


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, demo_model: DemoModel) -> Iterator[dict[str, Any]]:
    """Two ``ronghe serve`` processes sharing PostgreSQL, file storage and the secret."""
    shared = tmp_path / "shared-files"
    procs: list[subprocess.Popen[bytes]] = []
    ports = []
    try:
        for name in ("a", "b"):
            config = tmp_path / f"{name}.yaml"
            config.write_text(yaml.safe_dump({
                "data_dir": str(tmp_path / name), "database_url": pg_url,
                "storage_url": f"file://{shared}", "secret_key": SECRET,
                "image_models": [demo_model.spec()], "cpu_threads": 1, "chat_models": [],
                "log_level": "warning", "task_events_heartbeat_seconds": 1}))
            if name == "a":
                services = Services.build(Settings(config_file=config))
                upgrade(services.db.engine)
                services.auth.add_user("sse@example.com", PASSWORD)
                services.auth.add_user("other@example.com", PASSWORD)
                token = services.auth.issue_token("sse@example.com").secret
                other = services.auth.issue_token("other@example.com").secret
                services.close()
            port = free_port()
            procs.append(start(config, port, tmp_path / f"{name}.log"))
            ports.append(port)
        yield {"a": f"http://127.0.0.1:{ports[0]}", "b": f"http://127.0.0.1:{ports[1]}",
               "token": token, "other": other}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def submit(base: str, token: str) -> str:
    answer = httpx.post(f"{base}/api/v1b/task_submit", json={"token": token, **TASK},
                        timeout=30).json()
    return answer["task_id"]


def test_a_task_submitted_to_one_process_streams_from_the_other(
        cluster: dict[str, Any]) -> None:
    token = cluster["token"]
    url = f"{cluster['b']}/api/v1b/task_events"
    timeout = httpx.Timeout(10, read=30)
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"},
                      timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        task_id = submit(cluster["a"], token)
        other_task = submit(cluster["a"], cluster["other"])  # another user's: never shown
        frames = read_events(response, tasks_done({task_id}), 120)
    events = [f for f in frames if f.get("event") == "task"]
    ids = [int(f["id"]) for f in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {f["data"]["task_id"] for f in events} == {task_id}
    assert other_task != task_id
    states = [f["data"]["state"] for f in events]
    assert states[-1] == "done" and "running" in states
    final = events[-1]["data"]
    assert len(final["images"]) == 2 and final["select_seed"] == final["seed"]
    # The images of the final event can be fetched (from either process: shared storage).
    assert httpx.get(final["images"][0]["small"], timeout=10).status_code == 200

    # Resume after the first event: everything after it comes again, nothing before it.
    first_id = ids[0]
    with httpx.stream("GET", f"{url}?token={token}", headers={"Last-Event-ID": str(first_id)},
                      timeout=timeout) as response:
        again = read_events(response, tasks_done({task_id}), 60)
    resumed = [int(f["id"]) for f in again if f.get("event") == "task"]
    assert resumed and min(resumed) > first_id and max(resumed) == ids[-1]


def test_heartbeats_and_auth(cluster: dict[str, Any]) -> None:
    url = f"{cluster['a']}/api/v1b/task_events"
    with httpx.stream("GET", f"{url}?token={cluster['token']}",
                      timeout=httpx.Timeout(10, read=30)) as response:
        frames = read_events(response, lambda fs: sum(
            f.get("comment") == "heartbeat" for f in fs) >= 2, 30)
    assert frames[0].get("retry") == "2000"
    for bad in ({}, {"Authorization": "Bearer nope"}):
        response = httpx.get(url, headers=bad, timeout=10)
        assert response.status_code == 401 and response.json()["msg"]
