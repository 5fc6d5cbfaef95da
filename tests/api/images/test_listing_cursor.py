"""task_list's keyset paging over HTTP: next_cursor/cursor walk the same items as page
numbers, and a cursor that task_list did not make is a 400 naming the field."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ronghe.app import create_app
from tests.api.images.test_listing import LIST, add_tasks, listing
from tests.conftest import make_account, make_settings


@pytest.fixture
def idle(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    """No lifespan, so no worker: stored tasks stay as written."""
    app = create_app(make_settings(tmp_path / "data", database_url=db_url))
    yield TestClient(app, raise_server_exceptions=False)
    app.state.services.close()


def test_cursor_pages_are_the_page_numbers_pages(idle: TestClient) -> None:
    alice = make_account(idle.app)
    bob = make_account(idle.app, "bob@example.com")
    done = add_tasks(idle, alice.user_id, 9)
    failed = add_tasks(idle, alice.user_id, 3, state="failed")
    add_tasks(idle, alice.user_id, 2, kind="train")
    add_tasks(idle, bob.user_id, 2)
    for body, expected in (({}, (done + failed)[::-1]), ({"state": "done"}, done[::-1])):
        numbered = [listing(idle, alice.token, page=p, per_page=4, **body) for p in (1, 2, 3)]
        assert [i["task_id"] for p in numbered for i in p["items"]] == expected
        keyed, cursor = [], ""
        while True:
            page = listing(idle, alice.token, per_page=4, cursor=cursor, **body)
            keyed.append(page)
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(keyed) == len(numbered)
        for by_number, by_cursor in zip(numbered, keyed, strict=True):
            assert by_cursor == by_number  # items, page, total, has_next/prev, next_cursor
    assert listing(idle, alice.token, page=4, per_page=4)["next_cursor"] == ""


def bad(client: TestClient, token: str, **body: Any) -> dict[str, Any]:
    response = client.post(LIST, json={"token": token, **body})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["code"] == 400 and answer["info"] is None
    return answer


def test_a_cursor_task_list_did_not_make_is_a_400_naming_it(idle: TestClient) -> None:
    alice = make_account(idle.app)
    add_tasks(idle, alice.user_id, 3)
    cursor = listing(idle, alice.token, per_page=1)["next_cursor"]
    assert cursor
    forged = [
        "not a cursor", "%%%", 5, ["x"], "A" * 201,
        base64.urlsafe_b64encode(b'{"t": "2026-01-01T00:00:00+00:00"}').decode(),  # no id
        base64.urlsafe_b64encode(b'{"t": "yesterday", "i": "x"}').decode(),
        base64.urlsafe_b64encode(b'{"t": "2026-01-01T00:00:00", "i": "x"}').decode(),  # naive
        base64.urlsafe_b64encode(b'[1, 2]').decode(), cursor[:-3]]
    for value in forged:
        msg = bad(idle, alice.token, cursor=value)["msg"]
        assert msg.startswith('cursor: must be a next_cursor from a task_list answer, or "" '
                              "(from the newest)"), (value, msg)
    assert bad(idle, alice.token, cursor=cursor, page=2)["msg"] == (
        "cursor: give cursor or page, not both")
    # "" and null both mean: from the newest.
    assert listing(idle, alice.token, cursor="") == listing(idle, alice.token, cursor=None)
