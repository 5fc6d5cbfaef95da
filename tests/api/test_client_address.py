"""The client address that login throttling and sign-up limits count (issue 26, item 8).

A probe found ``X-Forwarded-For`` believed from 127.0.0.1 (uvicorn's default), so anyone on
the box, or a proxy passing the header through, could pick the address a guess counted
against, and ``not-an-ip`` counted as an address.  Now the header counts only from
``trusted_proxies`` (none by default), and only valid addresses in it do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select, update

from ronghe.api.client_address import client_address
from ronghe.app import create_app
from ronghe.auth.throttle import pair_key
from ronghe.db import utcnow
from ronghe.db.models import LoginFailure
from ronghe.settings import Settings
from tests.conftest import PASSWORD, make_account, make_settings

TOKEN = "/api/v1b/get_token"
EMAIL = "alice@example.com"


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    return {"type": "http", "client": (peer, 41000) if peer is not None else None,
            "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded]}


# --- the rule itself


def test_the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    assert client_address(scope("127.0.0.1", "198.51.100.7")) == "127.0.0.1"
    assert client_address(scope("192.0.2.1", "198.51.100.7"), ["10.0.0.0/8"]) == "192.0.2.1"
    assert client_address(scope(None, "198.51.100.7"), ["10.0.0.0/8"]) == ""


def test_the_right_most_untrusted_address_is_the_client() -> None:
    trusted = ["10.0.0.5", "172.16.0.0/12"]
    assert client_address(scope("10.0.0.5", "198.51.100.7"), trusted) == "198.51.100.7"
    # What the client wrote itself sits left of what the proxies appended: never read.
    chain = "6.6.6.6, 198.51.100.7, 172.16.3.4"
    assert client_address(scope("10.0.0.5", chain), trusted) == "198.51.100.7"
    # Repeated header lines are one list, in order.
    assert client_address(scope("10.0.0.5", "6.6.6.6", "198.51.100.7"), trusted) \
        == "198.51.100.7"
    # Only proxies in the header: the farthest one is as close to the client as it gets.
    assert client_address(scope("10.0.0.5", "172.16.0.9, 172.16.0.8"), trusted) \
        == "172.16.0.9"
    assert client_address(scope("10.0.0.5"), trusted) == "10.0.0.5"


def test_entries_that_are_not_addresses_never_become_the_client() -> None:
    trusted = ["10.0.0.5"]
    for header in ("not-an-ip", "", "unknown", "198.51.100.7, not-an-ip",
                   "198.51.100.7:443", "300.1.2.3"):
        # The walk stops at the proxy that passed the entry on: left of it is the client's.
        assert client_address(scope("10.0.0.5", header), trusted) == "10.0.0.5", header


def test_ipv6_forms() -> None:
    trusted = ["10.0.0.0/8", "fd00::/8"]
    assert client_address(scope("fd00::1", "[2001:db8::7]"), trusted) == "2001:db8::7"
    assert client_address(scope("fd00::1", "2001:DB8:0::7"), trusted) == "2001:db8::7"
    # A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6.
    assert client_address(scope("::ffff:10.1.2.3", "198.51.100.7"), trusted) == "198.51.100.7"
    assert client_address(scope("::ffff:192.0.2.1"), trusted) == "192.0.2.1"


def test_trusted_proxies_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).trusted_proxies == []
    monkeypatch.setenv("RONGHE_TRUSTED_PROXIES", '["10.0.0.5", "172.16.0.0/12", "fd00::/8"]')
    assert Settings(data_dir=tmp_path).trusted_proxies == ["10.0.0.5", "172.16.0.0/12",
                                                          "fd00::/8"]
    with pytest.raises(ValidationError, match="trusted_proxies: 'not-an-ip' is not an IP"):
        Settings(data_dir=tmp_path, trusted_proxies=["not-an-ip"])


# --- over HTTP: whose failures a guess counts against


def from_peer(app: FastAPI, host: str) -> Any:
    """The app as reached over a TCP connection from ``host`` (the ASGI scope's client)."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "client": (host, 41000)}
        await app(scope, receive, send)

    return asgi


class Door:
    """Logins to one app as if through a proxy at ``peer``."""

    def __init__(self, app: FastAPI, peer: str) -> None:
        self.app = app
        self.client = TestClient(from_peer(app, peer), raise_server_exceptions=False)

    def login(self, password: str, forwarded: str | None = None,
              email: str = EMAIL) -> httpx.Response:
        headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
        return self.client.post(TOKEN, json={"email": email, "password": password},
                                headers=headers)

    def counted(self) -> set[str]:
        """Key hashes with failures stored."""
        with self.app.state.services.db.session() as s:
            return set(s.scalars(select(LoginFailure.key_hash)))

    def expire_locks(self) -> None:
        with self.app.state.services.db.session() as s:
            s.execute(update(LoginFailure)
                      .values(locked_until=utcnow() - timedelta(seconds=1)))


@pytest.fixture
def make_door(tmp_path: Path) -> Iterator[Any]:
    apps: list[FastAPI] = []

    def build(peer: str = "127.0.0.1", **settings: object) -> Door:
        app = create_app(make_settings(tmp_path / f"data{len(apps)}", login_max_failures=2,
                                       login_lockout_seconds=40, **settings))
        apps.append(app)
        make_account(app)
        make_account(app, "bob@example.com")
        return Door(app, peer)

    yield build
    for app in apps:
        app.state.services.close()


def test_forwarded_for_is_ignored_by_default(make_door: Any) -> None:
    door = make_door()  # peer 127.0.0.1, as uvicorn used to trust by default
    for forwarded in ("198.51.100.1", "198.51.100.2"):
        assert door.login("wrong-password", forwarded).status_code == 401
    # A third made-up address does not escape the lock: every guess was 127.0.0.1's.
    assert door.login(PASSWORD, "198.51.100.3").status_code == 429
    assert door.counted() == {pair_key(EMAIL, "127.0.0.1")}


def test_forwarded_for_counts_from_a_trusted_proxy(make_door: Any) -> None:
    door = make_door(trusted_proxies=["127.0.0.1"])
    for _ in range(2):
        assert door.login("wrong-password", "198.51.100.1").status_code == 401
    assert door.login(PASSWORD, "198.51.100.1").status_code == 429
    # The owner behind the same proxy, from another address, is not locked out.
    assert door.login(PASSWORD, "198.51.100.2").status_code == 200
    assert door.counted() == {pair_key(EMAIL, "198.51.100.1")}
    # A peer that is not a trusted proxy cannot pick its address.
    stranger = Door(door.app, "192.0.2.66")
    for forwarded in ("198.51.100.5", "198.51.100.6"):
        assert stranger.login("wrong-password", forwarded).status_code == 401
    assert stranger.login(PASSWORD, "198.51.100.7").status_code == 429


def test_not_an_ip_never_becomes_the_client_address(make_door: Any) -> None:
    door = make_door(trusted_proxies=["127.0.0.1"])
    for forwarded in ("not-an-ip", "198.51.100.9, not-an-ip"):
        assert door.login("wrong-password", forwarded).status_code == 401
    # Both counted against the proxy that passed the garbage on, so it is locked.
    assert door.counted() == {pair_key(EMAIL, "127.0.0.1")}
    assert door.login(PASSWORD, "still-not-an-ip").status_code == 429
    assert door.login(PASSWORD).status_code == 429


def test_the_wait_grows_per_account_and_address(make_door: Any) -> None:
    door = make_door(trusted_proxies=["127.0.0.1"])
    here, there = "198.51.100.1", "198.51.100.2"
    for _ in range(2):
        assert door.login("wrong-password", here).status_code == 401
    assert 36 <= int(door.login(PASSWORD, here).headers["Retry-After"]) <= 40
    door.expire_locks()  # as if the wait ran out; the next failure doubles it
    assert door.login("wrong-password", here).status_code == 401
    assert 76 <= int(door.login(PASSWORD, here).headers["Retry-After"]) <= 80
    # The same account from another address, and another account from this one, start
    # from nothing.
    for _ in range(2):
        assert door.login("wrong-password", there).status_code == 401
    assert 36 <= int(door.login(PASSWORD, there).headers["Retry-After"]) <= 40
    assert door.login(PASSWORD, here, email="bob@example.com").status_code == 200


# --- the real server: uvicorn must not rewrite the client itself


def test_the_served_app_ignores_forwarded_for_from_loopback(tmp_path: Path) -> None:
    """``ronghe serve`` runs uvicorn with proxy_headers=False: it used to take
    X-Forwarded-For from 127.0.0.1 as the client before the app saw the request."""
    from tests.server_support import ronghe_server

    with ronghe_server(tmp_path / "data", RONGHE_LOGIN_MAX_FAILURES="2") as server:
        def login(password: str, forwarded: str) -> int:
            return httpx.post(f"{server.url}{TOKEN}", timeout=30,
                              json={"email": EMAIL, "password": password},
                              headers={"X-Forwarded-For": forwarded}).status_code

        assert login("wrong-password", "198.51.100.1") == 401
        assert login("wrong-password", "198.51.100.2") == 401
        assert login(PASSWORD, "198.51.100.3") == 429, server.log_tail()
