"""Login throttling over HTTP, on SQLite and PostgreSQL (issue 26, item 8).

An outside probe found that 20 concurrent wrong guesses got 22 password checks through
before the first 429 (the limit was 10), and that guesses already in flight when the lock
fell kept extending it (``Retry-After: 900`` within 2.6 s).  Every attempt is now counted,
together with the lock, before its password is checked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ronghe.app import create_app
from ronghe.auth.throttle import pair_key
from ronghe.db.models import LoginFailure
from tests.conftest import Account, make_account, make_settings

TOKEN = "/api/v1b/get_token"
GUESSES = 20


@dataclass
class Site:
    client: TestClient
    account: Account


def site(tmp_path: Path, db_url: str, **settings: object) -> Iterator[Site]:
    # No lifespan (no task worker): only the login path runs.
    app = create_app(make_settings(tmp_path / "data", database_url=db_url, **settings))
    try:
        yield Site(TestClient(app, raise_server_exceptions=False), make_account(app))
    finally:
        app.state.services.close()


@pytest.fixture
def ten(tmp_path: Path, db_url: str) -> Iterator[Site]:
    """The default limit (10 failures, then 30 s doubling to 900 s)."""
    yield from site(tmp_path, db_url)


@pytest.fixture
def two(tmp_path: Path, db_url: str) -> Iterator[Site]:
    yield from site(tmp_path, db_url, login_max_failures=2, login_lockout_seconds=40)


def guess(s: Site, password: str = "wrong-password") -> httpx.Response:
    return s.client.post(TOKEN, json={"email": s.account.email, "password": password})


def all_at_once(s: Site, n: int = GUESSES) -> list[httpx.Response]:
    """``n`` wrong guesses released together from ``n`` threads."""
    barrier = threading.Barrier(n)
    answers: list[httpx.Response | None] = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        answers[i] = guess(s)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(a is not None for a in answers), "a guess did not come back"
    return [a for a in answers if a is not None]


def stored(s: Site) -> LoginFailure:
    # The TestClient's peer is "testclient": that is the address the pair is keyed on.
    services = s.client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as db:
        row = db.scalar(select(LoginFailure).where(
            LoginFailure.key_hash == pair_key(s.account.email, "testclient")))
    assert row is not None
    return row


def test_concurrent_guesses_get_at_most_the_limit_checked(ten: Site) -> None:
    answers = all_at_once(ten)
    codes = sorted(a.status_code for a in answers)
    # Exactly 10 passwords checked (401), every other guess refused unchecked (429).
    assert codes == [401] * 10 + [429] * (GUESSES - 10), codes
    row = stored(ten)
    # The lock the 10th failure set (30 s), not one doubled by guesses that were in flight.
    assert row.failures == 10 and row.locked_until - row.last_failure_at == timedelta(seconds=30)
    # (A refused guess may have read the clock just before the 10th took the lock.)
    assert all(int(a.headers["Retry-After"]) <= 31 for a in answers if a.status_code == 429)
    r = guess(ten, ten.account.password)
    assert r.status_code == 429 and r.json()["code"] == 429


def test_attempts_while_locked_do_not_extend_the_lock(two: Site) -> None:
    # Guesses arriving together at the limit: only 2 are checked, and the lock they set
    # is the first one, 40 s.
    answers = all_at_once(two)
    assert sorted(a.status_code for a in answers) == [401] * 2 + [429] * (GUESSES - 2)
    waits = [int(a.headers["Retry-After"]) for a in answers if a.status_code == 429]
    assert max(waits) <= 41, waits
    locked = stored(two)
    assert locked.locked_until - locked.last_failure_at == timedelta(seconds=40)
    # Then one guess after another while locked, the right password too: still 429, the
    # wait only counts down, and the stored count and lock do not move.
    last = max(waits)
    for password in ["wrong-password"] * 10 + [two.account.password]:
        r = guess(two, password)
        assert r.status_code == 429 and "from this address" in r.json()["msg"]
        wait = int(r.headers["Retry-After"])
        assert wait <= last
        last = wait
    after = stored(two)
    assert (after.failures, after.locked_until) == (2, locked.locked_until)


def test_concurrent_wrong_old_passwords_stop_at_the_limit(two: Site) -> None:
    """change_password counts a wrong old password as logins do: before the check."""
    barrier = threading.Barrier(GUESSES)
    answers: list[int] = []

    def one() -> None:
        barrier.wait()
        answers.append(two.client.post("/api/v1b/change_password", json={
            "token": two.account.token, "old_password": "wrong-password",
            "new_password": "a-new-long-password"}).status_code)

    threads = [threading.Thread(target=one) for _ in range(GUESSES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(answers) == [400] * 2 + [429] * (GUESSES - 2)
