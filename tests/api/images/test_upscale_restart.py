"""The upscale task is durable: the server is killed mid-upscale, and after a restart the task
completes and its image is there on poll."""

from __future__ import annotations

import io
import signal
import time
from pathlib import Path

import httpx
import yaml
from PIL import Image

from ronghe.db.migrate import upgrade
from ronghe.engines.diffusion import upscalers
from ronghe.services import Services
from ronghe.settings import Settings
from tests.api.images.test_recovery import start
from tests.api.images.test_upscale import picture, tiny_esrgan
from tests.conftest import PASSWORD, DemoModel, free_port
from tests.image_support import png_bytes


def poll(base: str, token: str, task_id: str) -> dict:  # type: ignore[type-arg]
    return httpx.post(f"{base}/api/v1b/task_result", timeout=10,
                      json={"token": token, "task_id": task_id}).json()


def test_an_upscale_survives_a_killed_server(tmp_path: Path, demo_model: DemoModel) -> None:
    data = tmp_path / "data"
    tiny_esrgan(upscalers.folder(data / "models") / "tiny-4x.safetensors", 4)
    config = tmp_path / "ronghe.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(data), "image_models": [demo_model.spec()], "cpu_threads": 1,
        "chat_models": [], "log_level": "warning", "task_lease_seconds": 600}))
    services = Services.build(Settings(config_file=config))
    upgrade(services.db.engine)
    user = services.auth.add_user("erin@example.com", PASSWORD)
    token = services.auth.issue_token("erin@example.com").secret
    # 512 x 512 times 4 through the model: 9 tiles, several seconds on one thread.
    source = picture(512, 512)
    info = services.files.save(user.id, png_bytes(source), "image/png", "upload", 512, 512)
    url = services.files.url(info, "http://127.0.0.1/")
    services.close()

    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = start(config, port, log)
    try:
        answer = httpx.post(f"{base}/api/v1b/upscale", timeout=10, json={
            "token": token, "init_img": url, "upscaler": "tiny-4x", "scale": 4}).json()
        task_id = answer["task_id"]
        deadline = time.monotonic() + 60
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
        assert body["state"] == "done" and body["task_type"] == "upscale", body
        assert (body["images"][0]["width"], body["images"][0]["height"]) == (2048, 2048)
        image = httpx.get(body["images"][0]["large"], timeout=10)
        assert image.status_code == 200
        assert Image.open(io.BytesIO(image.content)).size == (2048, 2048)
    finally:
        server.kill()
        server.wait(timeout=10)
