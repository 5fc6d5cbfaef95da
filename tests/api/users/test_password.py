"""me and change_password over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import PASSWORD, Account

CHANGE = "/api/v1b/change_password"


def login(client: TestClient, email: str, password: str) -> str:
    r = client.post("/api/v1b/get_token", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def test_me_says_who_the_token_belongs_to(client: TestClient, account: Account) -> None:
    r = client.post("/api/v1b/me", headers={"Authorization": f"Bearer {account.token}"})
    info = r.json()["info"]
    assert info["id"] == account.user_id and info["email"] == account.email
    assert info["is_admin"] is False and info["is_active"] is True
    assert client.post("/api/v1b/me", json={}).status_code == 401


def test_change_password_keeps_this_token_and_revokes_the_others(
        client: TestClient, account: Account) -> None:
    other_session = login(client, account.email, PASSWORD)
    r = client.post(CHANGE, json={"token": account.token, "old_password": "wrong-one",
                                  "new_password": "a new password"})
    assert r.status_code == 400
    assert r.json() == {"code": 400, "info": None, "msg": "old_password: is incorrect"}
    r = client.post(CHANGE, json={"token": account.token, "old_password": PASSWORD,
                                  "new_password": "short"})
    assert r.status_code == 400 and r.json()["msg"] == "new_password must be 8-1024 characters"
    r = client.post(CHANGE, json={"token": account.token, "old_password": PASSWORD})
    assert r.status_code == 400 and r.json()["msg"] == "new_password is required"

    r = client.post(CHANGE, json={"token": account.token, "old_password": PASSWORD,
                                  "new_password": "a new password"})
    assert r.status_code == 200, r.text
    assert r.json()["info"] == {"changed": True, "revoked_tokens": 1}
    assert client.post("/api/v1b/me", json={"token": account.token}).status_code == 200
    assert client.post("/api/v1b/me", json={"token": other_session}).status_code == 401
    bad = client.post("/api/v1b/get_token", json={"email": account.email, "password": PASSWORD})
    assert bad.status_code == 401
    login(client, account.email, "a new password")


def test_guessing_the_old_password_is_throttled(client: TestClient, account: Account) -> None:
    limit = client.app.state.services.settings.login_max_failures  # type: ignore[attr-defined]
    for _ in range(limit):
        r = client.post(CHANGE, json={"token": account.token, "old_password": "guess-guess",
                                      "new_password": "a new password"})
        assert r.status_code == 400
    r = client.post(CHANGE, json={"token": account.token, "old_password": PASSWORD,
                                  "new_password": "a new password"})
    assert r.status_code == 429
