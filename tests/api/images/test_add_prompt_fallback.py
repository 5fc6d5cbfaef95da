"""add_prompt never breaks a generation: a chat model that suggests nothing (an empty
answer, or the prompt echoed back) leaves the prompt as sent; the suggestion is sampled
from the task's seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ronghe.app import create_app
from ronghe.engines.diffusion.output import read_metadata
from tests.api.images.conftest import submit
from tests.conftest import DemoModel, make_account, make_settings
from tests.image_support import wait_done
from tests.upstream_support import chat_upstream

PROMPT = "a red circle on a blue background"


@pytest.mark.parametrize("answer", ["", PROMPT, f"{PROMPT}.", "  \n"])
def test_an_empty_or_echoed_suggestion_generates_from_the_prompt(
        tmp_path: Path, demo_model: DemoModel, answer: str) -> None:
    with chat_upstream(lambda _prompt: answer) as upstream:
        settings = make_settings(
            tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1,
            chat_models=[{"name": "echo", "engine": "upstream",
                          "base_url": upstream.base_url}], chat_default_model="echo")
        app = create_app(settings)
        with TestClient(app) as client:
            account = make_account(app)
            task = submit(client, account, prompt=PROMPT, add_prompt=True, select_seed=77)
            done = wait_done(client, account.token, task["task_id"], timeout=120)
            assert done["state"] == "done", done
            assert done["prompt"] == PROMPT and done["prompt_added"] is False
            meta = read_metadata(client.get(done["images"][0]["large"]).content)
            assert meta["prompt"] == PROMPT and "original_prompt" not in meta
        # Asked once, with the task's seed.
        assert [r.get("seed") for r in upstream.requests] == [77]
