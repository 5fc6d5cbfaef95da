"""add_prompt: the bundled chat model rewrites the prompt before generation."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ronghe.app import create_app
from ronghe.engines.diffusion.output import read_metadata
from tests.api.images.conftest import submit
from tests.conftest import Account, DemoModel, make_account, make_settings
from tests.image_support import wait_done


def test_the_chat_model_rewrites_the_prompt_and_both_are_kept(
        client: TestClient, account: Account) -> None:
    original = "a red circle on a blue background"
    # The details are sampled from the task's seed: a fixed seed, the same details each run
    # (a random one could draw a suggestion that adds nothing, which is no failure now).
    task = submit(client, account, prompt=original, add_prompt=True, select_seed=3)
    done = wait_done(client, account.token, task["task_id"], timeout=180)
    assert done["state"] == "done", done
    assert done["prompt"].startswith(original + ", ") and len(done["prompt"]) > len(original) + 3
    meta = read_metadata(client.get(done["images"][0]["large"]).content)
    assert meta["original_prompt"] == original and meta["prompt"] == done["prompt"]
    assert done["prompt_added"] is True


def test_without_a_chat_engine_the_submit_fails(tmp_path: Path, demo_model: DemoModel) -> None:
    settings = make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                             chat_models=[], cpu_threads=1)
    app = create_app(settings)
    with TestClient(app) as client:
        account = make_account(app)
        response = client.post("/api/v1b/task_submit", json={
            "token": account.token, "prompt": "a red circle", "add_prompt": True})
        assert response.status_code == 503
        assert response.json()["msg"].startswith("add_prompt: the chat engine is unavailable")
        assert app.state.services.tasks.list(account.user_id) == []

