"""Admin endpoints over HTTP: accounts, disabling (tokens and keys stop), every user's queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ronghe.app import create_app
from tests.conftest import PASSWORD, Account, make_account, make_settings

ADMIN = "/api/v1b/admin"
ENDPOINTS = ("users", "user_add", "user_disable", "user_enable", "user_reset_password",
             "user_set_admin", "queue")


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[TestClient]:
    """No lifespan, so no worker: queued tasks stay pending."""
    app = create_app(make_settings(tmp_path / "data"))
    yield TestClient(app, raise_server_exceptions=False)
    app.state.services.close()


def make_admin(client: TestClient, email: str = "root@example.com") -> Account:
    account = make_account(client.app, email)
    client.app.state.services.auth.set_admin(email, True)  # type: ignore[attr-defined]
    return account


def call(client: TestClient, token: str, path: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"{ADMIN}/{path}", json={"token": token, **body})
    assert r.status_code == 200, r.text
    return r.json()["info"]


def test_non_admins_are_refused_everywhere(idle: TestClient) -> None:
    plain = make_account(idle.app)
    for path in ENDPOINTS:
        r = idle.post(f"{ADMIN}/{path}", json={"token": plain.token, "user_id": 1})
        assert r.status_code == 403, path
        assert r.json() == {"code": 403, "info": None,
                            "msg": "admin only: this account is not an admin"}
        assert idle.post(f"{ADMIN}/{path}", json={}).status_code == 401


def test_accounts_lifecycle(idle: TestClient) -> None:
    root = make_admin(idle)
    added = call(idle, root.token, "user_add", email="New@Example.com", password=PASSWORD)
    assert added["email"] == "new@example.com" and not added["is_admin"]
    r = idle.post(f"{ADMIN}/user_add", json={"token": root.token, "email": "new@example.com",
                                             "password": PASSWORD})
    assert r.status_code == 409
    user = make_account(idle.app, "bob@example.com")
    page = call(idle, root.token, "users", per_page=2)
    assert [u["email"] for u in page["items"]] == ["root@example.com", "new@example.com"]
    assert (page["total"], page["has_next"]) == (3, True)
    found = call(idle, root.token, "users", query="BOB")
    assert [u["id"] for u in found["items"]] == [user.user_id] and found["total"] == 1
    assert call(idle, root.token, "users", query="%")["total"] == 0  # a literal, not a pattern

    # Disabled: the token and the API key stop working at once, and sign-in is refused.
    off = call(idle, root.token, "user_disable", user_id=user.user_id)
    assert off["is_active"] is False
    assert idle.post("/api/v1b/me", json={"token": user.token}).status_code == 401
    assert idle.get("/v1/models",
                    headers={"Authorization": f"Bearer {user.api_key}"}).status_code == 401
    login = {"email": user.email, "password": PASSWORD}
    assert idle.post("/api/v1b/get_token", json=login).status_code == 401
    assert call(idle, root.token, "user_enable", user_id=user.user_id)["is_active"] is True
    assert idle.post("/api/v1b/get_token", json=login).status_code == 200
    assert idle.get("/v1/models",
                    headers={"Authorization": f"Bearer {user.api_key}"}).status_code == 200

    fresh = idle.post("/api/v1b/get_token", json=login).json()["token"]
    call(idle, root.token, "user_reset_password", user_id=user.user_id, password="reset-pass-1")
    assert idle.post("/api/v1b/me", json={"token": fresh}).status_code == 401
    assert idle.post("/api/v1b/get_token", json={**login, "password": "reset-pass-1"}).status_code \
        == 200

    assert call(idle, root.token, "user_set_admin", user_id=user.user_id, is_admin=True)[
        "is_admin"] is True
    bob_token = idle.post("/api/v1b/get_token",
                          json={**login, "password": "reset-pass-1"}).json()["token"]
    assert call(idle, bob_token, "users")["total"] == 3


def test_admins_cannot_lock_themselves_out_and_fields_are_checked(idle: TestClient) -> None:
    root = make_admin(idle)
    for path, body, msg in (
            ("user_disable", {"user_id": 1}, "user_id: you cannot disable your own account"),
            ("user_set_admin", {"user_id": 1, "is_admin": False},
             "user_id: you cannot remove your own admin rights"),
            ("user_disable", {"user_id": 99}, "user_id: no user with id 99"),
            ("user_disable", {"user_id": 0}, "user_id: must be an integer 1-2147483647 (got 0)"),
            ("user_disable", {}, "user_id is required"),
            ("user_set_admin", {"user_id": 1, "is_admin": "maybe"},
             'is_admin: must be true or false (got "maybe")'),
            ("user_reset_password", {"user_id": 1, "password": "short"},
             "password must be 8-1024 characters"),
            ("users", {"per_page": 0}, "per_page: must be an integer 1-100 (got 0)"),
            ("queue", {"kind": "x"}, 'kind: must be one of image, train, all (got "x")')):
        r = idle.post(f"{ADMIN}/{path}", json={"token": root.token, **body})
        assert r.json() == {"code": r.status_code, "info": None, "msg": msg}, path
        assert r.status_code in (400, 404)


def test_queue_shows_every_users_waiting_and_running_tasks(idle: TestClient) -> None:
    root = make_admin(idle)
    alice = make_account(idle.app)
    tasks = idle.app.state.services.tasks  # type: ignore[attr-defined]
    first = tasks.create(alice.user_id, "image", "images.demo",
                         {"model": "ronghe-demo", "prompt": "a red circle"})
    train = tasks.create(root.user_id, "train", "training",
                         {"name": "stars", "base_model": "ronghe-demo"})
    finished = tasks.create(alice.user_id, "image", "images.demo", {})
    assert tasks.claim(first.id, "w1") is not None
    claimed = tasks.claim(finished.id, "w1")
    assert claimed is not None and tasks.finish(finished.id, "w1", {"images": []})

    info = call(idle, root.token, "queue")
    assert info["total"] == 2 and [i["task_id"] for i in info["items"]] == [first.id, train.id]
    running, waiting = info["items"]
    assert running | {"create_time": "", "start_time": ""} == {
        "task_id": first.id, "kind": "image", "state": "running", "progress": 0.0,
        "user_id": alice.user_id, "email": alice.email, "create_time": "", "start_time": "",
        "queue": "images.demo", "model": "ronghe-demo", "prompt": "a red circle"}
    assert running["start_time"] and waiting["start_time"] == ""
    assert waiting["model_name"] == "stars" and waiting["email"] == root.email
    assert [i["task_id"] for i in call(idle, root.token, "queue", kind="train")["items"]] == [
        train.id]


def test_disabling_an_account_cancels_its_unfinished_tasks(idle: TestClient) -> None:
    root = make_admin(idle)
    alice, bob = make_account(idle.app), make_account(idle.app, "bob@example.com")
    tasks = idle.app.state.services.tasks  # type: ignore[attr-defined]
    queued = [tasks.create(alice.user_id, "image", "images.demo", {}) for _ in range(2)]
    running = tasks.create(alice.user_id, "image", "images.demo", {})
    assert tasks.claim(running.id, "w1") is not None
    others = tasks.create(bob.user_id, "image", "images.demo", {})

    call(idle, root.token, "user_disable", user_id=alice.user_id)
    for task in queued:
        ended = tasks.get(task.id, alice.user_id)
        assert ended.state == "cancelled" and ended.error_msg == (
            "cancelled: the account was disabled")
    # A running task is stopped by its worker at the next step, as a user's cancel is.
    assert tasks.get(running.id, alice.user_id).cancel_requested
    untouched = tasks.get(others.id, bob.user_id)
    assert untouched.state == "pending" and not untouched.cancel_requested
    assert [i["task_id"] for i in call(idle, root.token, "queue")["items"]] == [
        running.id, others.id]
