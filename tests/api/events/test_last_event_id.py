"""Last-Event-ID on GET /api/v1b/task_events is bounded (issue 26, item 5): a value that is
not an event id (ASCII digits, 0 to 2^63-1) gets a 400 before the stream starts, instead of a
200 whose stream died at its first database read (OverflowError)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ronghe.db.base import MAX_ID
from ronghe.settings import Settings
from tests.api.events.test_task_events import read_events
from tests.conftest import PASSWORD, Account, make_settings
from tests.server_support import Server, ronghe_server

URL = "/api/v1b/task_events"
# int() would take "+5", "1_000" and " 5"; "²" is a digit to str.isdigit().
BAD: list[str | bytes] = ["99999999999999999999", str(MAX_ID + 1), "-1", "+5", "1_000", "12a",
                          "0x10", "1.5", "²".encode("latin-1")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # One stream per user: a refused request that kept its stream slot would make the next
    # one a 429.
    return make_settings(tmp_path / "data", chat_models=[], task_events_max_streams=1)


@pytest.mark.parametrize("value", BAD)
def test_a_value_that_is_not_an_event_id_is_a_400_naming_the_header(
        client: TestClient, account: Account, value: str | bytes) -> None:
    for _ in range(3):
        response = client.get(URL, headers={"Authorization": f"Bearer {account.token}",
                                            "Last-Event-ID": value})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == 400 and body["info"] is None
        assert "Last-Event-ID" in body["msg"] and str(MAX_ID) in body["msg"]


def test_without_a_token_it_is_still_a_401(client: TestClient) -> None:
    response = client.get(URL, headers={"Last-Event-ID": BAD[0]})
    assert response.status_code == 401


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with ronghe_server(tmp_path_factory.mktemp("events"), None, ("sse@example.com",),
                       RONGHE_CHAT_MODELS="[]",
                       RONGHE_TASK_EVENTS_HEARTBEAT_SECONDS="1") as running:
        yield running


def token_of(server: Server) -> str:
    answer = httpx.post(f"{server.url}/api/v1b/get_token",
                        json={"email": "sse@example.com", "password": PASSWORD},
                        timeout=30).json()
    return (answer.get("info") or answer)["token"]


def test_the_largest_id_streams_and_one_past_it_is_refused(server: Server) -> None:
    """On a real server (SQLite, the default), where the overflow used to cut the stream."""
    headers = {"Authorization": f"Bearer {token_of(server)}"}
    refused = httpx.get(f"{server.url}{URL}",
                        headers={**headers, "Last-Event-ID": "99999999999999999999"},
                        timeout=30)
    assert refused.status_code == 400 and "Last-Event-ID" in refused.json()["msg"]
    with httpx.stream("GET", f"{server.url}{URL}",
                      headers={**headers, "Last-Event-ID": str(MAX_ID)},
                      timeout=httpx.Timeout(10, read=30)) as response:
        assert response.status_code == 200
        # Two heartbeats: the stream outlived several polls of the database past the id.
        frames = read_events(response, lambda fs: sum(
            f.get("comment") == "heartbeat" for f in fs) >= 2, 30)
    assert frames[0]["comment"] == f"connected, after event {MAX_ID}"
    assert "OverflowError" not in server.log_tail()
