"""task_submit's per-user limits answer 429 in the Miaohua envelope with Retry-After."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ronghe.app import create_app
from tests.api.images.conftest import SUBMIT
from tests.conftest import DemoModel, make_account, make_settings

BODY = {"prompt": "a red circle on a blue background", "n_images": 1,
        "output_size": "64x64", "ddim_steps": 4}


def test_the_pending_cap_answers_429_naming_the_limit(tmp_path: Path,
                                                      demo_model: DemoModel) -> None:
    app = create_app(make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                                   max_pending_tasks_per_user=2, task_submit_rate_per_minute=0))
    alice, bob = make_account(app), make_account(app, "bob@example.com")
    # No lifespan: no worker runs, so submitted tasks stay pending.
    client = TestClient(app, raise_server_exceptions=False)
    for _ in range(2):
        assert client.post(SUBMIT, json={**BODY, "token": alice.token}).status_code == 200
    r = client.post(SUBMIT, json={**BODY, "token": alice.token})
    assert r.status_code == 429
    assert r.json()["code"] == 429 and r.json()["info"] is None
    assert "at most 2 per user (max_pending_tasks_per_user)" in r.json()["msg"]
    assert int(r.headers["Retry-After"]) >= 1
    assert client.post(SUBMIT, json={**BODY, "token": bob.token}).status_code == 200
    app.state.services.close()


def test_the_submit_rate_answers_429_with_the_wait(tmp_path: Path,
                                                    demo_model: DemoModel) -> None:
    app = create_app(make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                                   task_submit_rate_per_minute=3))
    alice = make_account(app)
    client = TestClient(app, raise_server_exceptions=False)
    for _ in range(3):
        assert client.post(SUBMIT, json={**BODY, "token": alice.token}).status_code == 200
    r = client.post(SUBMIT, json={**BODY, "token": alice.token})
    assert r.status_code == 429 and "at most 3 per minute per user" in r.json()["msg"]
    assert 55 <= int(r.headers["Retry-After"]) <= 61
    app.state.services.close()
