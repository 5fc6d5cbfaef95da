"""The vendor chat API over real HTTP on the real model: envelopes, auth, validation, SSE."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from tests.chat_support import ChatServer

PATH = "/nlp/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say this is a test!"}]

# The spec's Python example, verbatim but for the URL and key.  It says `false` where Python
# needs `False` (a bug in the vendor's document), so it runs with `false` defined.
SPEC_EXAMPLE = """
import requests
api_secret_key = "xxxxxxxxxx"  # your api_secret_key

url = 'https://lm_experience.sensetime.com/nlp/v1/chat/completions'
data = {
    "messages": [{"role": "user", "content": "Say this is a test!"}],
    "temperature": 0.8,
    "top_p": 0.7,
    "max_new_tokens": 2048,
    "repetition_penalty": 1,
    "stream": false,
    "user_id": "test"
}
headers = {
    'Content-Type': 'application/json',
    'Authorization': api_secret_key
}

response = requests.post(url, headers=headers, json=data)

print(response.status_code)
print(response.text)
"""


def post(chat: ChatServer, body: Any, path: str = PATH,
         auth: str | None = None) -> httpx.Response:
    """POST with the account's key, or with ``auth`` as the header ("" sends none)."""
    value = chat.key if auth is None else auth
    headers = {"Authorization": value} if value else {}
    return httpx.post(chat.url + path, json=body, headers=headers, timeout=60)


def events(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n")
    return raw[:-2].split(b"\n\n")


def test_the_spec_python_example_prints_200(chat: ChatServer) -> None:
    code = SPEC_EXAMPLE.replace("https://lm_experience.sensetime.com", chat.url)
    code = code.replace("xxxxxxxxxx", chat.key)
    printed: list[object] = []
    # Its print() is captured directly: the server in this process logs to stdout too.
    exec(code, {"false": False, "print": printed.append})
    status, text = printed
    assert status == 200
    body = json.loads(str(text))
    assert body["code"] == 200 and body["msg"] == "ok"
    assert body["data"]["choices"][0]["message"].strip()


def test_envelope_with_real_token_counts(chat: ChatServer) -> None:
    r = post(chat, {"messages": HELLO, "max_new_tokens": 16})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["code"], body["msg"], body["data"]["status"]) == (200, "ok", 0)
    data = body["data"]
    assert isinstance(data["id"], str) and data["id"]
    (choice,) = data["choices"]
    assert choice["message"] == choice["content"] and choice["message"].strip()
    assert choice["role"] == "assistant" and choice["index"] == 0
    assert choice["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    assert usage["prompt_tokens"] == 36  # SmolLM2's template + default system prompt
    assert 0 < usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("path", [PATH, "/v1/nlp/chat/completions",
                                  "/test/v1/nlp/chat/completions"])
@pytest.mark.parametrize("scheme", ["raw", "bearer", "token"])
def test_every_path_and_auth_form(chat: ChatServer, path: str, scheme: str) -> None:
    auth = {"raw": chat.key, "bearer": f"Bearer {chat.key}", "token": f"Bearer {chat.token}"}
    r = post(chat, {"messages": HELLO, "max_new_tokens": 1}, path=path, auth=auth[scheme])
    assert r.status_code == 200 and r.json()["code"] == 200


@pytest.mark.parametrize("auth", ["", "wrong-key", "Bearer wrong-key"])
def test_missing_or_bad_key_is_a_401_envelope(chat: ChatServer, auth: str) -> None:
    r = post(chat, {"messages": HELLO}, auth=auth)
    assert r.status_code == 401
    body = r.json()
    assert body["code"] == 401 and body["data"] is None and body["msg"]


@pytest.mark.parametrize(("change", "expected"), [
    ({"temperature": 0}, "temperature: must be in (0, 2] (got 0)"),
    ({"temperature": 2.5}, "temperature: must be in (0, 2] (got 2.5)"),
    ({"top_p": 0}, "top_p: must be in (0, 1] (got 0)"),
    ({"top_p": 1.01}, "top_p: must be in (0, 1] (got 1.01)"),
    ({"max_new_tokens": 0}, "max_new_tokens: must be at least 1 (got 0)"),
    ({"repetition_penalty": 0}, "repetition_penalty: must be in (0, ∞) (got 0)"),
    ({"messages": []}, "messages: List should have at least 1 item"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x" * 200_001}]}, "messages[0].content"),
    ({"messages": [*HELLO, {"role": "assistant", "content": "Hi"}]},
     "messages: the last message must be from the user (got 'assistant')"),
    ({"messages": None}, "messages is required"),
    ({"model": "gpt-4"}, "model: unknown chat model 'gpt-4'; configured: smollm2"),
])
def test_out_of_range_values_name_the_field(chat: ChatServer, change: dict[str, Any],
                                            expected: str) -> None:
    r = post(chat, {"messages": HELLO, **change})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == 400 and body["data"] is None
    assert body["msg"].startswith(expected), body["msg"]


def test_extras_ignored_nulls_default_and_trailing_commas(chat: ChatServer) -> None:
    r = post(chat, {"messages": [{"role": "system", "content": "Be brief.", "name": "x"}, *HELLO],
                    "temperature": None, "top_k": 3, "max_new_tokens": 2, "model": "smollm2",
                    "user": "u1"})
    assert r.status_code == 200 and r.json()["data"]["usage"]["completion_tokens"] <= 2
    pasted = '{"messages": [{"role": "user", "content": "Hi"},], "max_new_tokens": 1,}'
    r = httpx.post(chat.url + PATH, content=pasted, timeout=60,
                   headers={"Authorization": chat.key, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_stream_framing_and_whole_characters(chat: ChatServer) -> None:
    body = {"messages": [{"role": "system", "content": "你是一个中文助手。只用中文回答。"},
                         {"role": "user", "content": "北京是哪个国家的首都？"}],
            "stream": True, "max_new_tokens": 24, "user_id": "test"}
    with httpx.stream("POST", chat.url + "/v1/nlp/chat/completions", json=body,
                      headers={"Authorization": chat.key}, timeout=60) as r:
        raw = r.read()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
    parts = events(raw)
    assert parts[-1] == b"data: [DONE]"
    chunks = []
    for part in parts[:-1]:
        assert part.startswith(b"data: ")
        chunks.append(json.loads(part[6:].decode("utf-8")))  # strict: no split characters
    assert len(chunks) >= 3
    ids = {c["data"]["id"] for c in chunks}
    assert len(ids) == 1
    for c in chunks[:-1]:
        assert (c["code"], c["msg"], c["data"]["status"]) == (200, "ok", 0)
        assert c["data"]["choices"][0]["finish_reason"] is None and "usage" not in c["data"]
    last = chunks[-1]["data"]
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert last["usage"]["completion_tokens"] > 0
    text = "".join(c["data"]["choices"][0]["delta"] for c in chunks)
    assert text.strip() and "\ufffd" not in text


def test_errors_before_the_stream_starts_are_plain_envelopes(chat: ChatServer) -> None:
    r = post(chat, {"messages": HELLO, "stream": True, "model": "nope"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert "unknown chat model 'nope'" in r.json()["msg"]


def test_concurrent_requests_all_answer(chat: ChatServer) -> None:
    results: list[httpx.Response] = []

    def ask(i: int) -> None:
        results.append(post(chat, {"messages": [{"role": "user", "content": f"Count to {i}"}],
                                   "max_new_tokens": 8}))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200] * 4
    assert all(0 < r.json()["data"]["usage"]["completion_tokens"] <= 8 for r in results)
