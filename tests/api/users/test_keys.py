"""Chat API keys made with a token: shown once, listed without secrets, own only, capped."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ronghe.app import create_app
from tests.conftest import Account, make_account, make_settings

KEYS = "/api/v1b/api_keys"


def test_create_list_use_revoke(client: TestClient, account: Account,
                                other_account: Account) -> None:
    r = client.post(f"{KEYS}/create", json={"token": account.token, "name": "laptop"})
    assert r.status_code == 200, r.text
    made = r.json()["info"]
    key = made["key"]
    assert key.startswith("rhk_") and made["prefix"] == key[:12] and made["name"] == "laptop"
    assert made["last_used_time"] == "" and made["create_time"]

    # The key works for chat's auth (the OpenAI model list needs no engine to answer).
    models = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert models.status_code == 200, models.text

    listed = client.post(f"{KEYS}/list", json={"token": account.token}).json()["info"]["items"]
    assert [k["id"] for k in listed] == [made["id"], 1]  # newest first; conftest's key is 1
    assert key not in str(listed) and all("key" not in k for k in listed)
    assert listed[0]["last_used_time"]
    # Someone else's key is not yours to see or revoke.
    assert client.post(f"{KEYS}/list", json={"token": other_account.token}).json()[
        "info"]["items"][0]["id"] != made["id"]
    r = client.post(f"{KEYS}/revoke", json={"token": other_account.token, "id": made["id"]})
    assert r.status_code == 404 and r.json()["msg"] == f"id: no API key {made['id']} of yours"

    r = client.post(f"{KEYS}/revoke", json={"token": account.token, "id": made["id"]})
    assert r.json() == {"code": 0, "info": {"id": made["id"], "revoked": True}, "msg": ""}
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    again = client.post(f"{KEYS}/revoke", json={"token": account.token, "id": made["id"]})
    assert again.status_code == 404
    listed = client.post(f"{KEYS}/list", json={"token": account.token}).json()["info"]["items"]
    assert [k["id"] for k in listed] == [1]


def test_fields_are_checked(client: TestClient, account: Account) -> None:
    r = client.post(f"{KEYS}/create", json={"token": account.token, "name": "n" * 129})
    assert r.status_code == 400
    assert r.json()["msg"].startswith("name: must be at most 128 characters (got 129)")
    for value, shown in ((0, "0"), ("x", '"x"'), (True, "true")):
        r = client.post(f"{KEYS}/revoke", json={"token": account.token, "id": value})
        assert r.status_code == 400
        assert r.json()["msg"] == f"id: must be an integer 1-2147483647 (got {shown})"
    assert client.post(f"{KEYS}/revoke", json={"token": account.token}).json()["msg"] == \
        "id is required"
    assert client.post(f"{KEYS}/create", json={}).status_code == 401


def test_the_cap_counts_active_keys(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "data", api_keys_per_user=2))
    with TestClient(app, raise_server_exceptions=False) as client:
        account = make_account(app)  # holds one key already
        first = client.post(f"{KEYS}/create", json={"token": account.token}).json()["info"]
        r = client.post(f"{KEYS}/create", json={"token": account.token})
        assert r.status_code == 409
        assert r.json()["msg"] == ("you have 2 API keys; the limit is 2 (api_keys_per_user): "
                                   "revoke one first")
        client.post(f"{KEYS}/revoke", json={"token": account.token, "id": first["id"]})
        assert client.post(f"{KEYS}/create", json={"token": account.token}).status_code == 200
