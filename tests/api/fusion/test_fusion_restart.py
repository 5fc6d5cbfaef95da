"""A fusion drawing is a durable task: the client leaves, the server is killed mid-render, and
after a restart the task completes and its image is there on poll."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import yaml

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from ronghe.settings import Settings
from tests.api.images.test_recovery import start
from tests.conftest import PASSWORD, DemoModel, free_port


def poll(base: str, token: str, task_id: str) -> dict:  # type: ignore[type-arg]
    return httpx.post(f"{base}/api/v1b/task_result", timeout=10,
                      json={"token": token, "task_id": task_id}).json()


def test_a_fusion_drawing_survives_a_restart(tmp_path: Path, demo_model: DemoModel) -> None:
    data = tmp_path / "data"
    config = tmp_path / "ronghe.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(data), "image_models": [demo_model.spec()], "cpu_threads": 1,
        "log_level": "warning"}))
    services = Services.build(Settings(config_file=config))
    upgrade(services.db.engine)
    services.auth.add_user("dora@example.com", PASSWORD)
    token = services.auth.issue_token("dora@example.com").secret
    key = services.auth.create_key("dora@example.com", "test").secret
    services.close()

    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = start(config, port, log)
    try:
        task_id = ""
        with httpx.stream("POST", f"{base}/v1/fusion/chat-with-image", timeout=60,
                          headers={"Authorization": key},
                          json={"messages": [{"role": "user", "content":
                                              "draw a red circle on a blue background"}],
                                "user_id": "dora", "mh_key": token, "stream": True,
                                "mh_output_size": "64x64", "mh_ddim_steps": 40}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith(": drawing task "):
                    task_id = line.removeprefix(": drawing task ").strip()
                    break
        assert task_id
        deadline = time.monotonic() + 90
        while True:
            body = poll(base, token, task_id)
            if body["state"] == "running" and body["progress"] > 0.1:
                break
            assert body["state"] in ("pending", "running") and time.monotonic() < deadline, body
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)

        server = start(config, port, log)
        deadline = time.monotonic() + 150
        while (body := poll(base, token, task_id))["state"] in ("pending", "running"):
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert body["state"] == "done", body
        assert body["prompt"] == "a red circle on a blue background"
        image = httpx.get(body["images"][0]["large"], timeout=10)
        assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    finally:
        server.kill()
        server.wait(timeout=10)
