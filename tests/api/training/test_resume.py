"""A real server killed mid-training resumes from its last checkpoint after a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from tests.conftest import PASSWORD, DemoModel, free_port, make_settings, wait_healthy
from tests.training_support import concept_images, encode, wait_training


@contextmanager
def server(data_dir: Path, port: int, model: DemoModel) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "RONGHE_DATA_DIR": str(data_dir), "RONGHE_CPU_THREADS": "1",
           "RONGHE_IMAGE_MODELS": json.dumps([model.spec()]), "HF_HUB_OFFLINE": "1"}
    log_path = data_dir / f"server-{time.monotonic_ns()}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, proc, 90, log_path)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()


def test_training_resumes_from_checkpoint_after_sigkill(tmp_path: Path,
                                                        demo_model: DemoModel) -> None:
    data_dir = tmp_path / "data"
    services = Services.build(make_settings(data_dir))
    upgrade(services.db.engine)
    services.auth.add_user("kill@example.com", PASSWORD)
    token = services.auth.issue_token("kill@example.com").secret
    services.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}

    with server(data_dir, port, demo_model) as proc, httpx.Client(base_url=base,
                                                                  headers=auth) as client:
        files = [("init_img", (f"{i}.png", encode(im), "image/png"))
                 for i, im in enumerate(concept_images(3, size=32))]
        urls = client.post("/api/v1b/upload_imgs", files=files).json()["info"]
        dataset = client.post("/api/v1b/dataset", json={"name": "k", "images": urls})
        submitted = client.post("/api/v1b/train_submit", json={
            "name": "survivor", "trigger_word": "purple star", "dataset":
            [dataset.json()["info"]["dataset_id"]], "steps": 90, "seed": 7})
        task_id = submitted.json()["info"]["task_id"]
        checkpoint = data_dir / "training" / task_id / "checkpoint.pt"
        before = wait_training(client, token, task_id, timeout=180, until=("running",))
        while before["step"] < 30 or not checkpoint.exists():
            assert before["state"] == "running", before
            time.sleep(0.1)
            before = client.post("/api/v1b/train_progress", json={"task_id": task_id}).json()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    saved_step = torch.load(checkpoint, weights_only=True)["step"]
    assert saved_step >= 25  # the preset checkpoints every 25 steps

    with server(data_dir, port, demo_model), httpx.Client(base_url=base,
                                                          headers=auth) as client:
        seen: list[dict] = []
        final = wait_training(client, token, task_id, timeout=240, seen=seen)
        assert final["state"] == "done", final
        assert final["resumed_from_step"] == saved_step
        resumed = [b for b in seen if b["state"] == "running" and b["phase"] == "training"]
        assert resumed and min(b["step"] for b in resumed) >= saved_step
        # The loss curve goes on from the checkpoint: the steps it kept are the same points.
        history = final["loss_history"]
        assert [x for x, _ in history] == list(range(1, 91))
        assert history[:saved_step] == before["loss_history"][:saved_step]
        listed = client.post("/api/v1b/models/private", json={}).json()
        assert "survivor" in [m["model_name"] for m in listed["info"]["models"]]
