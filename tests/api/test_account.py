"""get_token over HTTP, the three token placements, envelopes and forgiving JSON."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account

FILES = "/api/v1b/files"


def test_get_token_then_every_placement_is_accepted(client: TestClient,
                                                    account: Account) -> None:
    r = client.post("/api/v1b/get_token", json={"email": account.email,
                                                "password": account.password})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token.startswith("rht_") and "expires_at" in r.json()

    as_json = client.post(FILES, json={"token": token})
    as_header = client.post(FILES, json={}, headers={"Authorization": f"Bearer {token}"})
    as_form = client.post(FILES, data={"token": token})
    as_multipart = client.post(FILES, files={"token": (None, token)})
    for r in (as_json, as_header, as_form, as_multipart):
        assert r.status_code != 401, r.text
    assert as_json.json()["code"] == 0 and as_header.json()["code"] == 0


def test_the_vendors_trailing_commas_are_accepted(client: TestClient, account: Account) -> None:
    body = f'{{\n "email": "{account.email}",\n "password": "{account.password}",\n}}'
    r = client.post("/api/v1b/get_token", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    # curl -d without -H labels JSON as a form; it is still JSON.
    r = client.post("/api/v1b/get_token", content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_bad_credentials_are_one_clear_error(client: TestClient, account: Account,
                                             password: str | None) -> None:
    email = account.email if password else "nobody@example.com"
    r = client.post("/api/v1b/get_token", json={"email": email, "password": "wrong-password"})
    assert r.status_code == 401
    assert r.json() == {"code": 401, "info": None, "msg": "email or password is incorrect"}


def test_missing_bad_and_revoked_tokens_are_refused(client: TestClient,
                                                    account: Account) -> None:
    r = client.post(FILES, json={})
    assert r.status_code == 401 and "token is required" in r.json()["msg"]
    r = client.post(FILES, json={"token": "rht_forged"})
    assert r.status_code == 401 and "invalid or revoked" in r.json()["msg"]
    r = client.post("/api/v1b/revoke_token", json={"token": account.token})
    assert r.json()["info"] == {"revoked": True}
    r = client.post(FILES, json={"token": account.token})
    assert r.status_code == 401 and "revoked" in r.json()["msg"]


def test_validation_errors_name_the_field(client: TestClient) -> None:
    r = client.post("/api/v1b/get_token", json={"email": "a@b.co"})
    assert r.status_code == 400
    assert r.json() == {"code": 400, "info": None, "msg": "password is required"}
    r = client.post(FILES, json={"per_page": 1000, "token": "x"})
    assert r.status_code in (400, 401)
    r = client.post("/api/v1b/get_token", content="{not json",
                    headers={"Content-Type": "application/json"})
    assert r.json()["msg"] == "request body is not valid JSON"


def test_envelopes_per_api_family(client: TestClient) -> None:
    assert client.post("/api/v1b/nothing", json={}).json()["code"] == 404
    assert client.post("/api/v1b/nothing", json={}).json()["info"] is None
    chat = client.post("/nlp/v1/nothing", json={}).json()
    assert chat["code"] == 404 and chat["data"] is None
    openai = client.post("/v1/nothing", json={}).json()
    assert openai["error"]["code"] == 404
    assert client.get("/api/v1b/get_token").json()["code"] == 405


def test_oversized_bodies_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ronghe.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path, max_body_bytes=2048))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/v1b/get_token", json={"email": "a" * 5000, "password": "x"})
        assert r.status_code == 413 and "2048 bytes" in r.json()["msg"]
        r = c.post(FILES, files={"init_img": ("a.png", b"x" * 5000, "image/png")})
        assert r.status_code == 413


def test_get_token_brute_force_answers_429_with_retry_after(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ronghe.app import create_app
    from tests.conftest import make_account, make_settings

    app = create_app(make_settings(tmp_path, login_max_failures=2, login_lockout_seconds=40))
    account = make_account(app)
    with TestClient(app, raise_server_exceptions=False) as c:
        for _ in range(2):
            r = c.post("/api/v1b/get_token", json={"email": account.email, "password": "no"})
            assert r.status_code == 401
        r = c.post("/api/v1b/get_token",
                   json={"email": account.email, "password": account.password})
        assert r.status_code == 429 and r.json()["code"] == 429
        assert 39 <= int(r.headers["Retry-After"]) <= 41
        assert "from this address" in r.json()["msg"]
