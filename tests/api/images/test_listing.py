"""task_list over HTTP: newest first, paged, per user, filters, and params to submit again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from ronghe.app import create_app
from ronghe.images.job import ImageJob
from ronghe.jobs.models import Task
from ronghe.tasks.training import TrainJob
from tests.api.images.conftest import submit, upload
from tests.conftest import Account, make_account, make_settings
from tests.image_support import drawn, fetch_image, wait_done

LIST = "/api/v1b/task_list"


def listing(client: TestClient, token: str, **body: Any) -> dict[str, Any]:
    response = client.post(LIST, json={"token": token, **body})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["code"] == 0 and answer["msg"] == ""
    return answer["info"]


def test_generated_tasks_list_newest_first_with_images_and_reusable_params(
        client: TestClient, account: Account, other_account: Account) -> None:
    init = upload(client, account, drawn("red", "circle", "blue", size=64))
    first = submit(client, account, n_images=2, select_seed=77, neg_prompt="blurry")["task_id"]
    second = submit(client, account, init_img=init, strength=0.5)["task_id"]
    submit(client, other_account)
    for task_id in (first, second):
        assert wait_done(client, account.token, task_id)["state"] == "done"

    info = listing(client, account.token)
    assert [i["task_id"] for i in info["items"]] == [second, first]
    assert (info["total"], info["page"], info["per_page"]) == (2, 1, 20)
    assert not info["has_next"] and not info["has_prev"]
    newest, oldest = info["items"]
    # task_result's shape, plus the listing's fields.
    poll = client.post("/api/v1b/task_result",
                       json={"token": account.token, "task_id": first}).json()
    for key in ("state", "progress", "error_msg", "seed", "prompt", "task_type"):
        assert oldest[key] == poll[key], key
    assert oldest["kind"] == "image" and oldest["model"] == "ronghe-demo"
    assert oldest["create_time"] <= newest["create_time"] and oldest["finish_time"]
    assert len(oldest["images"]) == 2 and oldest["images"][0]["task_id"] == first
    assert fetch_image(client, oldest["images"][0]["small"]).size[0] <= 128
    assert oldest["params"]["select_seed"] == 77 and oldest["params"]["neg_prompt"] == "blurry"
    assert newest["task_type"] == "img2img" and newest["params"]["strength"] == 0.5
    assert fetch_image(client, newest["params"]["init_img"]).size == (64, 64)

    # "Use these settings again": the params are a task_submit body as they are.
    services = client.app.state.services  # type: ignore[attr-defined]
    again = client.post("/api/v1b/task_submit",
                        json={"token": account.token, **newest["params"]})
    assert again.status_code == 200, again.text
    copy = services.tasks.get(again.json()["task_id"])
    # The same, except that the default model ("") is now named: the model actually used.
    assert copy.params == services.tasks.get(second).params | {"model_name": "ronghe-demo"}
    wait_done(client, account.token, copy.id)

    # The other user sees only their own task.
    assert listing(client, other_account.token)["total"] == 1


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose worker never starts (no lifespan), so stored tasks stay as written."""
    app = create_app(make_settings(tmp_path / "data"))
    yield TestClient(app, raise_server_exceptions=False)
    app.state.services.close()


def add_tasks(client: TestClient, user_id: int, n: int, kind: str = "image",
              state: str = "done") -> list[str]:
    services = client.app.state.services  # type: ignore[attr-defined]
    ids = []
    for i in range(n):
        if kind == "image":
            params = ImageJob(model="ronghe-demo", model_name="ronghe-demo", prompt=f"p{i}",
                              neg_prompt="", n_images=1, scale=7.0, seed=i, width=64,
                              height=64, steps=4, strength=0.6,
                              task_type="txt2img").to_params()
        else:
            params = TrainJob(lora_id=i, name=f"lora{i}", base_model="ronghe-demo",
                              family="demo", trigger_word="tw", main_body="Style",
                              file_ids=[], preset={"steps": 40}, seed=i).to_params()
        ids.append(services.tasks.create(user_id, kind, "q", params).id)
    with services.db.session() as s:
        s.execute(update(Task).where(Task.id.in_(ids)).values(state=state))
    return ids


def test_pages_filters_and_ranges(idle: TestClient) -> None:
    alice = make_account(idle.app)
    bob = make_account(idle.app, "bob@example.com")
    done = add_tasks(idle, alice.user_id, 5)
    failed = add_tasks(idle, alice.user_id, 2, state="failed")
    train = add_tasks(idle, alice.user_id, 1, kind="train", state="running")
    add_tasks(idle, bob.user_id, 3)
    newest_first = (done + failed)[::-1]

    pages = [listing(idle, alice.token, page=p, per_page=3) for p in (1, 2, 3, 4)]
    assert [i["task_id"] for p in pages for i in p["items"]] == newest_first
    assert [p["total"] for p in pages] == [7] * 4
    assert [p["has_next"] for p in pages] == [True, True, False, False]
    assert [p["has_prev"] for p in pages] == [False, True, True, True]
    assert pages[3]["items"] == []

    only = listing(idle, alice.token, state="failed")
    assert [i["task_id"] for i in only["items"]] == failed[::-1] and only["total"] == 2
    trains = listing(idle, alice.token, kind="train")["items"]
    assert [i["task_id"] for i in trains] == train
    assert trains[0] | {"create_time": "", "task_id": ""} == {
        "task_id": "", "kind": "train", "state": "running", "progress": 0.0, "error_msg": "",
        "create_time": "", "finish_time": "", "model_name": "lora0", "model_id": 0,
        "base_model": "ronghe-demo", "trigger_word": "tw", "main_body": "Style",
        "step": 0, "total_steps": 40}
    everything = listing(idle, alice.token, kind="ALL", per_page=100)
    assert everything["items"][0]["task_id"] == train[0] and everything["total"] == 8
    assert listing(idle, alice.token, state="running", kind="all")["total"] == 1

    for body, msg in (
            ({"page": 0}, "page: must be an integer 1-100000 (got 0)"),
            ({"per_page": 101}, "per_page: must be an integer 1-100 (got 101)"),
            ({"per_page": "x"}, 'per_page: must be an integer 1-100 (got "x")'),
            ({"state": "finished"}, 'state: must be one of pending, running, done, failed, '
                                    'cancelled or "" (any) (got "finished")'),
            ({"kind": "chat"}, 'kind: must be one of image, train, all (got "chat")')):
        response = idle.post(LIST, json={"token": alice.token, **body})
        assert response.status_code == 400
        assert response.json() == {"code": 400, "info": None, "msg": msg}
    assert idle.post(LIST, json={}).status_code == 401


def test_a_page_is_three_reads_whatever_its_size(idle: TestClient) -> None:
    alice = make_account(idle.app)
    services = idle.app.state.services  # type: ignore[attr-defined]
    ids = add_tasks(idle, alice.user_id, 30)
    # Give every task three stored images, as a finished generation has.
    for task_id in ids:
        files = [services.files.save(alice.user_id, b"x", "image/jpeg", "image").id
                 for _ in range(3)]
        with services.db.session() as s:
            s.execute(update(Task).where(Task.id == task_id).values(result={"images": [
                {"large": files[0], "middle": files[1], "small": files[2],
                 "save_index": 0}]}))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        info = listing(idle, alice.token, per_page=25)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    assert len(info["items"]) == 25 and all(i["images"][0]["large"] for i in info["items"])
    reads = [s for s in statements if "tasks" in s or "files" in s]
    # Besides the token lookup: the count, the page, one batched file lookup.
    assert len(reads) == 3, reads


def test_a_task_stored_before_the_typed_job_still_lists(idle: TestClient) -> None:
    """Rows from before issue 27: no versionid or outpaint, and add_prompt's decision beside
    the input.  The listing shows the submission, not the decision."""
    alice = make_account(idle.app)
    services = idle.app.state.services  # type: ignore[attr-defined]
    params = {"model": "ronghe-demo", "model_name": "", "prompt": "a red circle",
              "neg_prompt": "", "n_images": 1, "scale": 5.0, "seed": 3, "width": 64,
              "height": 64, "steps": 4, "strength": 0.6, "init_file_id": None, "controls": [],
              "loras": [], "add_prompt": True, "task_type": "txt2img",
              "enriched_prompt": "a red circle, soft light"}
    task_id = services.tasks.create(alice.user_id, "image", "q", params).id
    [item] = listing(idle, alice.token)["items"]
    assert item["task_id"] == task_id and item["model"] == "ronghe-demo"
    assert item["params"] | {"cn_configs": [], "lora_configs": []} == {
        "model_name": "ronghe-demo", "versionid": "", "prompt": "a red circle",
        "neg_prompt": "", "n_images": 1, "scale": 5.0, "select_seed": 3,
        "output_size": "64x64", "ddim_steps": 4, "strength": 0.6, "init_img": "",
        "add_prompt": True, "lora_configs": [], "cn_configs": [], "outpaint_config": None,
        "sampler_name": "", "scheduler": "", "enable_hr": False, "hr_scale": None,
        "hr_upscaler": None, "hr_second_pass_steps": None, "hr_denoising_strength": None}
