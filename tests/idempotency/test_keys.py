"""Idempotency-Key on task_submit, train_submit, dataset and the uploads: the same key and
body -> the first answer (nothing new done); another body -> 409; across a restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from ronghe.app import create_app
from ronghe.db import utcnow
from ronghe.idempotency.models import IdempotencyKey
from ronghe.settings import Settings
from tests.conftest import Account, DemoModel, make_account, make_settings
from tests.image_support import drawn, png_bytes
from tests.training_support import TRIGGER, concept_dataset

SUBMIT = "/api/v1b/task_submit"
BODY = {"prompt": "a red circle on a blue background", "n_images": 1,
        "output_size": "64x64", "ddim_steps": 2}


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1,
                         chat_models=[])


def post(client: TestClient, path: str, key: str | None, **kwargs: Any) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(path, headers=headers, **kwargs)


def test_task_submit_same_key_same_body_returns_the_first_task(
        client: TestClient, account: Account, other_account: Account) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    body = {**BODY, "token": account.token, "select_seed": 3}
    first = post(client, SUBMIT, "order-1", json=body)
    again = post(client, SUBMIT, "order-1", json=body)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(services.tasks.list(account.user_id)) == 1
    # The same content sent differently (a Bearer token, fields reordered) is the same body.
    same = client.post(SUBMIT, json=dict(reversed(list({**BODY, "select_seed": 3}.items()))),
                       headers={"Idempotency-Key": "order-1",
                                "Authorization": f"Bearer {account.token}"})
    assert same.json() == first.json()
    # Another body with the key: 409 naming it.
    other = post(client, SUBMIT, "order-1", json={**body, "prompt": "a green square"})
    assert other.status_code == 409
    answer = other.json()
    assert "Idempotency-Key" in answer["msg"] and "different request" in answer["msg"]
    # Keys are per user.
    theirs = post(client, SUBMIT, "order-1", json={**body, "token": other_account.token})
    assert theirs.status_code == 200 and theirs.json()["task_id"] != first.json()["task_id"]
    # No key: a new task every time.
    assert post(client, SUBMIT, None, json=body).json() != first.json()


def test_a_failed_request_does_not_hold_the_key(client: TestClient, account: Account) -> None:
    bad = post(client, SUBMIT, "k2", json={**BODY, "token": account.token,
                                           "model_name": "nope"})
    assert bad.status_code == 400
    good = post(client, SUBMIT, "k2", json={**BODY, "token": account.token})
    assert good.status_code == 200 and good.json()["task_id"]


def test_bad_keys_are_refused(client: TestClient, account: Account) -> None:
    for key in ("x" * 256, "has space", ""):
        response = post(client, SUBMIT, key, json={**BODY, "token": account.token})
        assert response.status_code in (400, 422), (key, response.text)
        assert "Idempotency-Key" in response.json()["msg"]


def test_keys_expire_after_a_day(client: TestClient, account: Account) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    body = {**BODY, "token": account.token}
    first = post(client, SUBMIT, "old", json=body).json()["task_id"]
    with services.db.session() as s:
        s.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=25)))
    assert post(client, SUBMIT, "old", json=body).json()["task_id"] != first


def test_the_key_holds_across_a_restart(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        account = make_account(app)
        body = {**BODY, "token": account.token}
        first = post(client, SUBMIT, "restart-1", json=body).json()
    again_app = create_app(settings)  # a new process on the same database
    with TestClient(again_app) as client:
        assert post(client, SUBMIT, "restart-1", json=body).json() == first
        assert post(client, SUBMIT, "restart-1",
                    json={**body, "n_images": 2}).status_code == 409
        services = again_app.state.services
        assert len(services.tasks.list(account.user_id)) == 1


def test_uploads_and_datasets(client: TestClient, account: Account) -> None:
    auth = {"Authorization": f"Bearer {account.token}"}
    files = [("init_img", ("a.png", png_bytes(drawn("red", "circle", "blue")), "image/png"))]
    first = client.post("/api/v1b/upload_imgs", files=files,
                        headers={**auth, "Idempotency-Key": "up-1"})
    again = client.post("/api/v1b/upload_imgs", files=files,
                        headers={**auth, "Idempotency-Key": "up-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.files.list(account.user_id)[1] == 1
    changed = [("init_img", ("a.png", png_bytes(drawn("green", "square", "white")),
                             "image/png"))]
    assert client.post("/api/v1b/upload_imgs", files=changed,
                       headers={**auth, "Idempotency-Key": "up-1"}).status_code == 409

    body = {"token": account.token, "name": "set", "images": first.json()["info"]}
    made = post(client, "/api/v1b/dataset", "ds-1", json=body)
    assert post(client, "/api/v1b/dataset", "ds-1", json=body).json() == made.json()
    listing = client.post("/api/v1b/dataset_all", json={"token": account.token}).json()
    assert listing["total"] == 1
    assert post(client, "/api/v1b/dataset", "ds-1",
                json={**body, "name": "other"}).status_code == 409


def test_train_submit(client: TestClient, account: Account) -> None:
    dataset_id, _ = concept_dataset(client, account.token, 2)
    body = {"token": account.token, "name": "stars-lora", "trigger_word": TRIGGER,
            "main_body": "Style", "dataset": [dataset_id], "steps": 2}
    first = post(client, "/api/v1b/train_submit", "train-1", json=body)
    assert first.status_code == 200, first.text
    again = post(client, "/api/v1b/train_submit", "train-1", json=body)
    assert again.json() == first.json()
    assert post(client, "/api/v1b/train_submit", "train-1",
                json={**body, "steps": 3}).status_code == 409
    task_id = first.json()["info"]["task_id"]
    client.post("/api/v1b/train_cancel", json={"token": account.token, "task_id": task_id})
    services = client.app.state.services  # type: ignore[attr-defined]
    assert [t.id for t in services.tasks.list(account.user_id, kind="train")] == [task_id]
