"""Task life: cancel, isolation between users, batch polling."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.api.images.conftest import submit, upload
from tests.conftest import Account
from tests.image_support import drawn, wait_done

LONG = {"n_images": 8, "ddim_steps": 150, "output_size": "64x64"}


def test_cancel_pending_never_runs_and_running_stops_at_the_next_step(
        client: TestClient, account: Account) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    running = submit(client, account, **LONG)["task_id"]
    waiting = submit(client, account, **LONG)["task_id"]
    wait_done(client, account.token, running, states=("running",))
    deadline = time.monotonic() + 60
    while services.tasks.get(running).progress < 0.1:
        assert time.monotonic() < deadline, "the first task never made progress"
        time.sleep(0.05)

    answer = client.post("/api/v1b/task_cancel",
                         json={"token": account.token, "task_id": waiting}).json()
    assert answer["code"] == 0 and answer["info"]["state"] == "cancelled"

    asked = time.monotonic()
    answer = client.post("/api/v1b/task_cancel",
                         json={"token": account.token, "task_id": running}).json()
    assert answer["info"]["state"] == "running" and answer["info"]["cancel_requested"]
    done = wait_done(client, account.token, running, timeout=30)
    stopped_after = time.monotonic() - asked
    assert done["state"] == "cancelled" and done["images"] == []
    assert done["error_msg"] == "cancelled by the user"
    task = services.tasks.get(running)
    assert task.detail["step"] < task.detail["steps"] and task.progress < 0.9
    assert stopped_after < 5, stopped_after

    never = services.tasks.get(waiting)
    assert never.state == "cancelled" and never.started_at is None and never.attempts == 0
    # Cancelling a finished task changes nothing.
    again = client.post("/api/v1b/task_cancel",
                        json={"token": account.token, "task_id": running}).json()
    assert again["info"]["state"] == "cancelled"


def test_other_users_tasks_and_uploads_do_not_exist_for_you(
        client: TestClient, account: Account, other_account: Account) -> None:
    task_id = submit(client, account)["task_id"]
    wait_done(client, account.token, task_id)
    for path, body in (("task_result", {"task_id": task_id}),
                       ("task_cancel", {"task_id": task_id})):
        response = client.post(f"/api/v1b/{path}", json={"token": other_account.token, **body})
        assert response.status_code == 404
        assert response.json() == {"code": 404, "info": None,
                                   "msg": f"task {task_id!r} not found"}
    batch = client.post("/api/v1b/task_results",
                        json={"token": other_account.token, "task_ids": [task_id]}).json()
    assert batch["info"][0]["state"] == "not_found" and batch["info"][0]["images"] == []
    url = upload(client, account, drawn("red", "circle", "blue"))
    response = client.post("/api/v1b/task_submit", json={
        "token": other_account.token, "prompt": "x", "init_img": url})
    assert response.status_code == 400 and "no uploaded image of yours" in response.json()["msg"]
    # Bearer works as well as the body token, and a missing token is 401.
    ok = client.post("/api/v1b/task_result", json={"task_id": task_id},
                     headers={"Authorization": f"Bearer {account.token}"})
    assert ok.status_code == 200 and ok.json()["state"] == "done"
    assert client.post("/api/v1b/task_result", json={"task_id": task_id}).status_code == 401


def test_batch_poll_answers_in_order_with_images_tagged(client: TestClient,
                                                        account: Account) -> None:
    ids = [submit(client, account, n_images=2)["task_id"] for _ in range(2)]
    for task_id in ids:
        wait_done(client, account.token, task_id)
    asked = [ids[1], "no-such-task", ids[0]]
    body = client.post("/api/v1b/task_results",
                       json={"token": account.token, "task_ids": asked}).json()
    assert body["code"] == 0 and body["msg"] == ""
    assert [item["task_id"] for item in body["info"]] == asked
    assert [item["state"] for item in body["info"]] == ["done", "not_found", "done"]
    images = body["info"][0]["images"]
    assert len(images) == 2 and images[1]["save_index"] == 1
    assert images[0]["task_id"] == ids[1] and images[0]["task_type"] == "txt2img"
    assert {"large", "middle", "small"} <= set(images[0])
    too_many = client.post("/api/v1b/task_results",
                           json={"token": account.token, "task_ids": ["x"] * 51})
    assert too_many.status_code == 400 and too_many.json()["msg"].startswith("task_ids")


def test_waiting_tasks_run_fairly_between_users(client: TestClient, account: Account,
                                                other_account: Account) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    first = submit(client, account, n_images=2, ddim_steps=25)["task_id"]
    wait_done(client, account.token, first, states=("running",))
    alice = [submit(client, account)["task_id"] for _ in range(2)]
    bob = submit(client, other_account)["task_id"]
    for task_id in [first, *alice]:
        assert wait_done(client, account.token, task_id)["state"] == "done"
    assert wait_done(client, other_account.token, bob)["state"] == "done"
    started = {t: services.tasks.get(t).started_at for t in [*alice, bob]}
    # Bob submitted last but had not been served yet, so he goes before Alice's backlog.
    assert started[bob] < started[alice[0]] < started[alice[1]]
