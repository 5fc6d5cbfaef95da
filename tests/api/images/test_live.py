"""What a task looks like while it waits and runs: wait_time, select_seed, live previews."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from ronghe.app import create_app
from ronghe.db.base import utcnow
from ronghe.jobs.previews import KEEP_SECONDS, URL_TTL_SECONDS, file_id, sweep
from tests.api.images.conftest import submit
from tests.conftest import Account, DemoModel, make_account, make_settings
from tests.image_support import wait_done

LONG = {"n_images": 8, "ddim_steps": 100, "output_size": "64x64"}


def result(client: TestClient, account: Account, task_id: str) -> dict:
    return client.post("/api/v1b/task_result",
                       json={"token": account.token, "task_id": task_id}).json()


def test_wait_time_counts_the_tasks_ahead_and_select_seed_is_the_seed(
        client: TestClient, account: Account) -> None:
    first = submit(client, account, **LONG, select_seed=11)["task_id"]
    wait_done(client, account.token, first, states=("running",))
    waiting = [submit(client, account, **LONG, select_seed=20 + i)["task_id"]
               for i in range(3)]
    answers = client.post("/api/v1b/task_results", json={
        "token": account.token, "task_ids": [first, *waiting]}).json()["info"]
    assert [a["wait_time"] for a in answers] == [0, 0, 1, 2]
    assert [a["select_seed"] for a in answers] == [11, 20, 21, 22]
    assert result(client, account, waiting[2])["wait_time"] == 2
    for task_id in [*waiting, first]:
        client.post("/api/v1b/task_cancel", json={"token": account.token, "task_id": task_id})
    done = wait_done(client, account.token, first)
    assert done["wait_time"] == 0 and done["select_seed"] == 11


def test_previews_appear_while_running_and_outlive_the_task_for_their_urls(
        client: TestClient, account: Account) -> None:
    task_id = submit(client, account, **LONG, select_seed=4)["task_id"]
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while True:
        body = result(client, account, task_id)
        if body["state"] == "running" and body["preview"] and body["preview"] not in seen:
            seen.append(body["preview"])
            response = client.get(body["preview"])
            # Overwritten in place, never missing while its task runs.
            assert response.status_code == 200, response.text
            image = Image.open(io.BytesIO(response.content))
            assert image.format == "JPEG" and max(image.size) <= 256
        if body["state"] not in ("pending", "running"):
            break
        assert time.monotonic() < deadline
        if body["state"] == "pending":
            assert body["preview"] == ""
        time.sleep(0.1)
    assert body["state"] == "done" and body["preview"] == ""
    # About one a second: a generation of several seconds shows more than one.
    assert len(seen) >= 2, seen
    # The URL handed out last, fetched after the end (what a browser that polled just
    # before does), still answers: the file stays until every URL to it has expired.
    late = client.get(seen[-1])
    assert late.status_code == 200 and late.headers["content-type"] == "image/jpeg"
    services = client.app.state.services  # type: ignore[attr-defined]
    assert list(services.files.get_many([file_id(task_id)])) == [file_id(task_id)]
    # The next task's end sweeps previews nobody wrote for KEEP_SECONDS; this one is recent.
    assert sweep(services.files) == 0
    later = utcnow() + timedelta(seconds=KEEP_SECONDS + URL_TTL_SECONDS)
    assert sweep(services.files, now=later) == 1
    assert services.files.get_many([file_id(task_id)]) == {}
    files, _ = services.files.list(account.user_id, kind="preview")
    assert files == []
    assert client.get(seen[-1]).status_code == 404


def test_previews_can_be_turned_off(tmp_path: Path, demo_model: DemoModel) -> None:
    settings = make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                             cpu_threads=1, chat_models=[], image_previews=False)
    app = create_app(settings)
    with TestClient(app) as client:
        account = make_account(app)
        task_id = submit(client, account, n_images=4, ddim_steps=60,
                         output_size="64x64")["task_id"]
        previews = set()
        while (body := result(client, account, task_id))["state"] in ("pending", "running"):
            previews.add(body["preview"])
            time.sleep(0.1)
        assert body["state"] == "done" and previews <= {""}
