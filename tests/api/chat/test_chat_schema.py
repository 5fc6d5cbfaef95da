"""The chat answers of both APIs, from the real model, match what /openapi.json documents."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema

from tests.chat_support import ChatServer

HELLO = [{"role": "user", "content": "Hi"}]


def validate(doc: dict[str, Any], path: str, method: str, body: Any) -> None:
    ok = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    schema = {**ok["schema"], "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_vendor_and_openai_answers_match_their_schemas(chat: ChatServer) -> None:
    doc = httpx.get(f"{chat.url}/openapi.json", timeout=30).json()
    auth = {"Authorization": chat.key}
    vendor = httpx.post(f"{chat.url}/nlp/v1/chat/completions", headers=auth, timeout=120,
                        json={"messages": HELLO, "max_new_tokens": 2})
    assert vendor.status_code == 200, vendor.text
    validate(doc, "/nlp/v1/chat/completions", "post", vendor.json())
    openai = httpx.post(f"{chat.url}/v1/chat/completions", headers=auth, timeout=120,
                        json={"messages": HELLO, "max_tokens": 2})
    assert openai.status_code == 200, openai.text
    validate(doc, "/v1/chat/completions", "post", openai.json())
    assert openai.json()["choices"][0]["logprobs"] is None
    models = httpx.get(f"{chat.url}/v1/models", headers=auth, timeout=30)
    validate(doc, "/v1/models", "get", models.json())
    assert models.json()["data"][0]["id"] == "smollm2"
    # Errors are in the documented error envelopes, not FastAPI's 422 shape.
    bad = httpx.post(f"{chat.url}/v1/chat/completions", headers=auth, timeout=30,
                     json={"messages": HELLO, "temperature": 3})
    assert bad.status_code == 400
    schema = {"$ref": "#/components/schemas/OpenAIError", "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(bad.json())
