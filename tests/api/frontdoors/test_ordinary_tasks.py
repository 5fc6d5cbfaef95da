"""A front door's request is an ordinary task of the caller: it counts against their limits
(429 in each API's shape), stays in their history when the wait runs out, sends their
webhook, and the A1111 model choice is remembered in the database."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ronghe.api import waiting
from ronghe.app import create_app
from ronghe.jobs.events import COMPLETED
from tests.api.frontdoors.conftest import SECOND
from tests.conftest import PASSWORD, Account, DemoModel, make_account, make_settings
from tests.webhook_support import events_of, receiver


def basic(account: Account) -> dict[str, str]:
    raw = base64.b64encode(f"{account.email}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def no_worker(tmp_path: Path, demo_model: DemoModel,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FastAPI, Account]]:
    """No lifespan, so no worker: tasks stay pending and the front doors' wait (cut short
    here) runs out.  One submit a minute per user."""
    monkeypatch.setattr(waiting, "IMAGE_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(waiting, "IMAGE_POLL_SECONDS", 0.05)
    app = create_app(make_settings(tmp_path / "data", chat_models=[],
                                   image_models=[demo_model.spec(),
                                                 demo_model.spec(SECOND, aliases=[])],
                                   task_submit_rate_per_minute=1))
    yield app, make_account(app)
    app.state.services.close()


def test_limits_answer_429_and_a_task_outlasting_the_wait_stays_in_the_history(
        no_worker: tuple[FastAPI, Account]) -> None:
    app, alice = no_worker
    client = TestClient(app)
    key = {"Authorization": f"Bearer {alice.api_key}"}
    first = client.post("/v1/images/generations", headers=key,
                        json={"prompt": "a red circle", "size": "64x64"})
    assert first.status_code == 504 and first.json()["error"]["code"] == 504
    listed = client.post("/api/v1b/task_list", json={"token": alice.token}).json()
    assert [t["state"] for t in listed["info"]["items"]] == ["pending"]
    again = client.post("/v1/images/generations", headers=key,
                        json={"prompt": "a red circle", "size": "64x64"})
    assert again.status_code == 429 and int(again.headers["Retry-After"]) > 0
    assert again.json()["error"]["type"] == "rate_limit_error"
    a1111 = client.post("/sdapi/v1/txt2img", headers=basic(alice),
                        json={"prompt": "x", "width": 64, "height": 64})
    assert a1111.status_code == 429 and a1111.json()["error"] == "TooManyRequests"
    assert "Retry-After" in a1111.headers


def test_the_model_choice_is_remembered_per_user_across_a_restart(
        tmp_path: Path, demo_model: DemoModel) -> None:
    def app() -> FastAPI:
        return create_app(make_settings(tmp_path / "data", chat_models=[],
                                        image_models=[demo_model.spec(),
                                                      demo_model.spec(SECOND, aliases=[])]))

    first = app()
    alice, bob = make_account(first), make_account(first, "bob@example.com")
    client = TestClient(first)
    assert client.post("/sdapi/v1/options", headers=basic(alice),
                       json={"sd_model_checkpoint": SECOND}).status_code == 200
    first.state.services.close()
    restarted = app()
    second = TestClient(restarted)
    try:
        assert second.get("/sdapi/v1/options",
                          headers=basic(alice)).json()["sd_model_checkpoint"] == SECOND
        assert second.get("/sdapi/v1/options",
                          headers=basic(bob)).json()["sd_model_checkpoint"] == "ronghe-demo"
    finally:
        restarted.state.services.close()


def test_each_front_door_sends_the_callers_webhook(tmp_path: Path,
                                                   demo_model: DemoModel) -> None:
    app = create_app(make_settings(tmp_path / "data", chat_models=[], cpu_threads=1,
                                   image_models=[demo_model.spec()],
                                   webhook_allowed_networks=["127.0.0.0/8"]))
    alice = make_account(app)
    with receiver() as hooks, TestClient(app) as client:
        r = client.post("/v1/images/generations",
                        headers={"Authorization": f"Bearer {alice.api_key}"},
                        json={"prompt": "a red circle", "size": "64x64", "quality": "low",
                              "webhook": hooks.url("/openai")})
        assert r.status_code == 200, r.text
        r = client.post("/sdapi/v1/txt2img", headers=basic(alice),
                        json={"prompt": "a red circle", "width": 64, "height": 64,
                              "steps": 2, "webhook": hooks.url("/sdapi")})
        assert r.status_code == 200, r.text
        for path in ("/openai", "/sdapi"):
            got = hooks.wait_for(lambda g, p=path: COMPLETED in events_of(
                [x for x in g if x.path == p]))
            done = [x for x in got if x.path == path and x.json["event"] == COMPLETED]
            assert done[0].json["state"] == "done" and len(done[0].json["images"]) == 1
