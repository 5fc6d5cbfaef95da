"""A GGUF dropped into <data_dir>/models is a chat model, listed and usable by name."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ronghe.app import create_app
from ronghe.engines.llm.bundled import resolve_model_path
from tests.chat_support import chat_settings
from tests.conftest import make_account


def test_a_dropped_gguf_is_served_by_its_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "tiny-chat.gguf").symlink_to(resolve_model_path("bundled:smollm2"))
    (data / "models" / "broken.gguf").write_bytes(b"not a gguf file")
    with TestClient(create_app(chat_settings(data)), raise_server_exceptions=False) as client:
        key = make_account(client.app).api_key
        headers = {"Authorization": f"Bearer {key}"}
        listed = client.get("/v1/models", headers=headers).json()["data"]
        assert [m["id"] for m in listed] == ["smollm2", "tiny-chat"]  # the broken one is not
        answer = client.post("/v1/chat/completions", headers=headers, json={
            "model": "tiny-chat", "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hi"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "tiny-chat"
        assert answer.json()["choices"][0]["message"]["content"]
