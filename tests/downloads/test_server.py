"""Pulls on a running server: ``POST /api/v1b/admin/models/pull`` starts a durable
``download`` task on a real ``ronghe serve``; its progress shows in ``task_events``, the
admin's queue and ``pulls``; it can be cancelled; it resumes after the server is killed and
started again; and the pulled model generates through ``task_submit`` with no restart.
Files come from the model server of tests/download_support.py (the Hub stand-in too)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ronghe.db.migrate import upgrade
from ronghe.downloads import catalogue
from ronghe.services import Services
from tests.api.events.test_task_events import read_events
from tests.conftest import PASSWORD, DemoModel, make_settings
from tests.download_support import ModelServer, Repo, chat_gguf, demo_checkpoint, model_server
from tests.image_support import wait_done
from tests.server_support import Server, ronghe_server

ADMIN, USER = "root@example.com", "alice@example.com"
CHAT = catalogue.BY_NAME["qwen2.5-0.5b"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory,
          demo_model: DemoModel) -> Iterator[ModelServer]:
    root = tmp_path_factory.mktemp("served")
    checkpoint = demo_checkpoint(demo_model.path, root / "shapes.safetensors")
    other = root / "slow.safetensors"
    shutil.copyfile(checkpoint, other)
    hub = {CHAT.repo: Repo({CHAT.files[0]: chat_gguf()})}
    with model_server(ModelServer(files={"shapes.safetensors": checkpoint,
                                         "slow.safetensors": other}, repos=hub)) as running:
        yield running


def prepare(data: Path) -> str:
    """An admin, a user, and the admin's API key (for /v1/models)."""
    services = Services.build(make_settings(data))
    upgrade(services.db.engine)
    services.auth.add_user(ADMIN, PASSWORD, True)
    services.auth.add_user(USER, PASSWORD)
    key = services.auth.create_key(ADMIN, "test").secret
    services.close()
    return key


def serve(data: Path, demo_model: DemoModel, files: ModelServer) -> Any:
    # HF_ENDPOINT, as huggingface_hub reads it, points at the stand-in; the Hub is on.
    return ronghe_server(data, demo_model, (), HF_ENDPOINT=files.url, HF_HUB_OFFLINE="0")


def token(server: Server, email: str) -> str:
    answer = httpx.post(f"{server.url}/api/v1b/get_token",
                        json={"email": email, "password": PASSWORD}, timeout=10).json()
    return str(answer["token"])


def admin_call(server: Server, tok: str, route: str, **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/api/v1b/admin/{route}", json=body,
                        headers={"Authorization": f"Bearer {tok}"}, timeout=30)
    return {"status": answer.status_code, **answer.json()}


def wait_pull(server: Server, tok: str, task_id: str, until: Callable[[dict[str, Any]], bool],
              timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        items = admin_call(server, tok, "models/pulls")["info"]["items"]
        item = next(i for i in items if i["task_id"] == task_id)
        if until(item):
            return item
        assert time.monotonic() < deadline, f"pull never got there: {item}"
        time.sleep(0.1)


def test_a_pull_survives_a_killed_server_and_its_model_generates(
        tmp_path: Path, demo_model: DemoModel, files: ModelServer) -> None:
    data = tmp_path / "data"
    prepare(data)
    size = files.files["shapes.safetensors"].stat().st_size
    # Progress as it goes, and the file stops at 2.5 MB until the server is killed.
    files.rate = 1_000_000
    files.hold(2_500_000)
    with serve(data, demo_model, files) as server:
        tok = token(server, ADMIN)
        started = admin_call(server, tok, "models/pull",
                             ref=f"{files.url}/files/shapes.safetensors")
        assert started["status"] == 200, started
        task_id = started["info"]["task_id"]
        item = wait_pull(server, tok, task_id, lambda i: i["bytes_done"] > 1_000_000)
        assert item["state"] == "running" and item["phase"] == "downloading"
        assert item["bytes_total"] == size and item["email"] == ADMIN
        queue = admin_call(server, tok, "queue", page=1, per_page=20)["info"]["items"]
        assert [(q["kind"], q["model"]) for q in queue] == [
            ("download", f"{files.url}/files/shapes.safetensors")]
        server.proc.kill()  # no graceful stop: the task is left running, its lease held
        server.proc.wait(timeout=10)
    files.rate = None
    files.release()
    with serve(data, demo_model, files) as server:
        tok = token(server, ADMIN)
        item = wait_pull(server, tok, task_id, lambda i: i["state"] in ("done", "failed"))
        assert item["state"] == "done", item
        assert item["result"]["name"] == "shapes" and item["result"]["family"] == "demo"
        resumed = [r for r in files.ranges("/files/shapes.safetensors")
                   if r and r != "bytes=0-0"]
        assert resumed and int(resumed[-1].removeprefix("bytes=").rstrip("-")) > 1_000_000
        # Served at once, by name, through task_submit: no restart, no scan by hand.
        base = httpx.post(f"{server.url}/api/v1b/models/base", json={}, timeout=10).json()
        assert "shapes" in [m["model_name"] for m in base["info"]["models"]]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            user = token(server, USER)
            submitted = client.post("/api/v1b/task_submit", json={
                "token": user, "prompt": "a red circle on a blue background",
                "model_name": "shapes", "n_images": 1, "ddim_steps": 4,
                "output_size": "64x64"}).json()
            assert submitted["code"] == 0, submitted
            result = wait_done(client, user, submitted["task_id"])
        assert result["state"] == "done" and len(result["images"]) == 1, result


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel,
            files: ModelServer) -> Iterator[tuple[Server, str]]:
    data = tmp_path_factory.mktemp("server") / "data"
    key = prepare(data)
    with serve(data, demo_model, files) as server:
        yield server, key


def test_only_admins_pull_and_bad_refs_are_400s(running: tuple[Server, str]) -> None:
    server, _ = running
    user = token(server, USER)
    refused = admin_call(server, user, "models/pull", ref="sd15")
    assert refused["status"] == 403
    tok = token(server, ADMIN)
    bad = admin_call(server, tok, "models/pull", ref="not a model")
    assert bad["status"] == 400 and bad["msg"].startswith("ref:")
    bad = admin_call(server, tok, "models/pull", ref="sd15", kind="movie")
    assert bad["status"] == 400 and bad["msg"].startswith("kind:")
    listed = admin_call(server, tok, "models/catalogue")["info"]["items"]
    assert [i["name"] for i in listed] == [e.name for e in catalogue.ENTRIES]
    assert not any(i["installed"] for i in listed)


def test_a_pull_is_cancelled_and_leaves_nothing(running: tuple[Server, str],
                                                files: ModelServer) -> None:
    server, _ = running
    tok = token(server, ADMIN)
    files.rate = 300_000
    files.hold(600_000)  # it cannot finish before the cancel
    try:
        started = admin_call(server, tok, "models/pull", ref=f"{files.url}/files/slow.safetensors")
        task_id = started["info"]["task_id"]
        wait_pull(server, tok, task_id, lambda i: i["bytes_done"] > 0)
        again = admin_call(server, tok, "models/pull", ref=f"{files.url}/files/slow.safetensors")
        assert again["status"] == 409 and task_id in again["msg"]
        cancelled = admin_call(server, tok, "models/pull_cancel", task_id=task_id)
        assert cancelled["status"] == 200
        item = wait_pull(server, tok, task_id, lambda i: i["state"] != "running")
    finally:
        files.rate = None
        files.release()
    assert item["state"] == "cancelled"
    assert not (server.data_dir / "models" / "slow.safetensors").exists()
    staging = server.data_dir / "downloads"
    assert not staging.exists() or not any(staging.iterdir())


def test_a_catalogue_chat_pull_streams_its_events_and_chats(
        running: tuple[Server, str]) -> None:
    server, key = running
    tok = token(server, ADMIN)
    with httpx.stream("GET", f"{server.url}/api/v1b/task_events",
                      headers={"Authorization": f"Bearer {tok}"},
                      timeout=httpx.Timeout(10, read=60)) as stream:
        started = admin_call(server, tok, "models/pull", ref=CHAT.name)
        task_id = started["info"]["task_id"]

        def ended(frames: list[dict[str, Any]]) -> bool:
            return any(f.get("event") == "task" and f["data"]["task_id"] == task_id
                       and f["data"]["state"] in ("done", "failed") for f in frames)

        frames = read_events(stream, ended, 120)
    events = [f["data"] for f in frames if f.get("event") == "task"
              and f["data"]["task_id"] == task_id]
    assert events[-1]["state"] == "done", events[-1]
    assert {e["kind"] for e in events} == {"download"}
    assert events[-1]["result"]["kind"] == "chat"
    listed = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                       timeout=10).json()["data"]
    assert CHAT.name in [m["id"] for m in listed]
    answer = httpx.post(f"{server.url}/v1/chat/completions", timeout=60,
                        headers={"Authorization": f"Bearer {key}"},
                        json={"model": CHAT.name, "max_tokens": 4, "temperature": 0,
                              "messages": [{"role": "user", "content": "Say hi"}]})
    assert answer.status_code == 200 and answer.json()["model"] == CHAT.name, answer.text
    catalogue_rows = admin_call(server, tok, "models/catalogue")["info"]["items"]
    row = next(r for r in catalogue_rows if r["name"] == CHAT.name)
    assert row["installed"] and row["installed_bytes"] == chat_gguf().stat().st_size
