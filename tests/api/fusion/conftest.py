from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ronghe.settings import Settings
from tests.conftest import Account, DemoModel, make_settings

PATH = "/v1/fusion/chat-with-image"
# Small and fast on the shared CPU: the demo model at its smallest size, few steps.
IMAGE = {"mh_output_size": "64x64", "mh_ddim_steps": 4}


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1)


def ask(client: TestClient, account: Account, text: str | list[dict[str, str]],
        path: str = PATH, auth: str | None = None, **fields: Any) -> Any:
    messages = [{"role": "user", "content": text}] if isinstance(text, str) else text
    body = {"messages": messages, "user_id": "u1", "mh_key": account.token,
            "max_new_tokens": 8, **IMAGE, **fields}
    headers = {"Authorization": auth if auth is not None else account.api_key}
    return client.post(path, json=body, headers=headers)


def events(response: Any) -> tuple[list[dict[str, Any]], list[str], bool]:
    """(data chunks, comment lines, whether [DONE] ended it)."""
    import json

    chunks, comments, done = [], [], False
    for line in response.text.splitlines():
        if line.startswith(":"):
            comments.append(line)
        elif line.startswith("data: "):
            payload = line[len("data: "):]
            if payload == "[DONE]":
                done = True
            else:
                assert not done, "data after [DONE]"
                chunks.append(json.loads(payload))
    return chunks, comments, done
