"""First-run setup and self sign-up over HTTP; setup's race on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ronghe.app import create_app
from ronghe.db.models import User
from ronghe.errors import Conflict
from ronghe.services import Services
from tests.conftest import PASSWORD, make_settings

SETUP = "/api/v1b/setup"


def test_first_visit_creates_the_admin_once(client: TestClient) -> None:
    assert client.get(SETUP).json() == {"code": 0, "msg": "",
                                        "info": {"needs_setup": True, "allow_signup": False}}
    r = client.post(SETUP, json={"email": "Root@Example.com", "password": "short"})
    assert r.status_code == 400
    assert r.json() == {"code": 400, "info": None, "msg": "password must be 8-1024 characters"}
    r = client.post(SETUP, json={"email": "root", "password": PASSWORD})
    assert r.status_code == 400 and r.json()["msg"].startswith("email must look like")
    assert client.post(SETUP, json={"password": PASSWORD}).json()["msg"] == "email is required"

    r = client.post(SETUP, json={"email": "Root@Example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    user = r.json()["info"]
    assert user | {"create_time": ""} == {"id": 1, "email": "root@example.com",
                                          "is_admin": True, "is_active": True,
                                          "create_time": ""}
    assert client.get(SETUP).json()["info"]["needs_setup"] is False
    again = client.post(SETUP, json={"email": "evil@example.com", "password": PASSWORD})
    assert again.status_code == 409 and again.json()["msg"].startswith("setup is already done")
    token = client.post("/api/v1b/get_token", json={"email": "root@example.com",
                                                    "password": PASSWORD}).json()["token"]
    me = client.post("/api/v1b/me", json={"token": token}).json()["info"]
    assert me["is_admin"] and me["email"] == "root@example.com" and me["token_expires_at"]


def test_setup_is_refused_once_any_user_exists(client: TestClient) -> None:
    client.app.state.services.auth.add_user("ops@example.com", PASSWORD)  # type: ignore[attr-defined]
    assert client.get(SETUP).json()["info"]["needs_setup"] is False
    r = client.post(SETUP, json={"email": "late@example.com", "password": PASSWORD})
    assert r.status_code == 409


def test_concurrent_setups_make_exactly_one_admin(db_url: str, tmp_path: Path) -> None:
    services = Services.build(make_settings(tmp_path / "data", database_url=db_url))
    from ronghe.db.migrate import upgrade

    upgrade(services.db.engine)
    n = 6
    barrier = threading.Barrier(n)
    outcomes: list[object] = [None] * n

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = services.auth.accounts.setup(f"admin{i}@example.com", PASSWORD)
        except Conflict as exc:
            outcomes[i] = exc
        except Exception as exc:  # anything else is a bug this test reports
            outcomes[i] = repr(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        made = [o for o in outcomes if isinstance(o, User)]
        assert len(made) == 1, outcomes
        assert all(isinstance(o, Conflict) for o in outcomes if o is not made[0]), outcomes
        with services.db.session() as s:
            assert s.scalar(select(func.count()).select_from(User)) == 1
            assert s.scalar(select(User.email).where(User.is_admin)) == made[0].email
    finally:
        services.close()


@pytest.fixture
def open_client(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path / "data", allow_signup=True, signup_max_per_hour=2))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_signup_only_when_allowed(client: TestClient) -> None:
    r = client.post("/api/v1b/signup", json={"email": "a@example.com", "password": PASSWORD})
    assert r.status_code == 403 and "allow_signup" in r.json()["msg"]


def test_signup_makes_plain_users_and_is_rate_limited(open_client: TestClient) -> None:
    assert open_client.get(SETUP).json()["info"]["allow_signup"] is True
    r = open_client.post("/api/v1b/signup", json={"email": "a@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["info"]["is_admin"] is False
    r = open_client.post("/api/v1b/signup", json={"email": "A@example.com", "password": PASSWORD})
    assert r.status_code == 409
    assert r.json()["msg"] == "email: a user with email a@example.com already exists"
    r = open_client.post("/api/v1b/signup", json={"email": "b@example.com", "password": PASSWORD})
    assert r.status_code == 200
    r = open_client.post("/api/v1b/signup", json={"email": "c@example.com", "password": PASSWORD})
    assert r.status_code == 429 and "signup_max_per_hour" in r.json()["msg"]
    assert r.headers["retry-after"]
    token = open_client.post("/api/v1b/get_token", json={"email": "b@example.com",
                                                         "password": PASSWORD}).json()["token"]
    assert open_client.post("/api/v1b/me", json={"token": token}).json()["info"]["id"] == 2
