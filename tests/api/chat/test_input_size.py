"""Big chat inputs never freeze the server (issue 26, item 3), over real HTTP.

Every chat endpoint (vendor, OpenAI-compatible, fusion) refuses more than
``chat_max_input_chars`` characters of text with a 400 naming the limit, before anything is
tokenized; what is under it is templated and tokenized in a worker thread.  Either way the
event loop stays free: ``/healthz`` (milliseconds at rest) keeps answering within a second
while the big request is received, checked and tokenized.  The server is uvicorn serving the
app in this process, so ``/healthz`` and the chat request share one event loop.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.chat_support import ChatServer, serve_chat

OPENAI = "/v1/chat/completions"
VENDOR = "/nlp/v1/chat/completions"
VENDOR_ALIAS = "/v1/nlp/chat/completions"
FUSION = "/v1/fusion/chat-with-image"
# The bound: a behaviour, not a benchmark (/healthz takes ~2 ms at rest).
HEALTHZ_BOUND_SECONDS = 1.0
MB = 1_000_000
PER_MESSAGE = 200_000  # the vendor API's own cap on one message


def post(server: ChatServer, path: str, body: dict[str, Any] | bytes,
         timeout: float = 120) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    return httpx.post(server.url + path, content=data, headers=headers, timeout=timeout)


def healthz_waits_during(server: ChatServer,
                         request: Callable[[], httpx.Response]) -> tuple[httpx.Response,
                                                                        list[float]]:
    """Runs ``request`` in a thread and times ``/healthz`` again and again until it ends."""
    answers: list[httpx.Response] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            answers.append(request())
        except BaseException as exc:  # re-raised in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=run)
    waits: list[float] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        thread.start()
        while True:
            began = time.monotonic()
            assert client.get("/healthz").status_code == 200
            waits.append(time.monotonic() - began)
            if not thread.is_alive():
                break
            time.sleep(0.02)
    thread.join()
    if failures:
        raise failures[0]
    return answers[0], waits


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def many_messages(total: int) -> list[dict[str, str]]:
    """``total`` characters as vendor messages of at most 200,000 characters each."""
    count = -(-total // PER_MESSAGE)
    return [user("x" * (total // count)) for _ in range(count)]


def error_text(path: str, r: httpx.Response) -> str:
    """The message of an error in the path's envelope, checking the envelope's shape."""
    body = r.json()
    if path == OPENAI:
        assert body["error"]["code"] == r.status_code
        assert body["error"]["type"] == "invalid_request_error"
        return str(body["error"]["message"])
    assert body["code"] == r.status_code and body["data"] is None
    return str(body["msg"])


# --- the regression test: /healthz answers within 1 s during a 5 MB request

def five_mb(path: str) -> bytes:
    """5 MB of text: one message on the OpenAI API, 200,000-character ones on the others."""
    if path == OPENAI:
        body = {"model": "smollm2", "messages": [user("x" * (5 * MB))], "max_tokens": 1}
    else:
        body = {"messages": many_messages(5 * MB), "max_new_tokens": 1}
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", [OPENAI, VENDOR, FUSION])
def test_healthz_answers_within_1s_during_a_5mb_chat_request(chat: ChatServer,
                                                             path: str) -> None:
    body = five_mb(path)
    assert len(body) > 5 * MB
    r, waits = healthz_waits_during(chat, lambda: post(chat, path, body))
    assert r.status_code == 400, r.text[:500]
    msg = error_text(path, r)
    assert msg.startswith("messages: the request has 5")
    assert "the limit is 500000 characters per request (chat_max_input_chars)" in msg
    assert max(waits) < HEALTHZ_BOUND_SECONDS, waits


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """A server whose cap lets megabytes through to the tokenizer."""
    with serve_chat(tmp_path_factory.mktemp("roomy"), chat_max_input_chars=4 * MB) as server:
        yield server


def test_a_request_under_the_cap_is_tokenized_off_the_event_loop(roomy: ChatServer) -> None:
    # One long run of a letter: about two seconds of the tokenizer's time here (1 MB: 0.8 s),
    # which on the event loop would be a two-second freeze of every other request.
    body = {"model": "smollm2", "messages": [user("x" * (5 * MB // 2))], "max_tokens": 1}
    r, waits = healthz_waits_during(roomy, lambda: post(roomy, OPENAI, body))
    # Under the character cap it was templated and tokenized, then refused by the context.
    assert r.status_code == 400, r.text[:500]
    msg = error_text(OPENAI, r)
    assert msg.startswith("messages: the conversation is ") and "context of 8192 tokens" in msg
    assert r.json()["error"]["param"] == "messages"
    assert max(waits) < HEALTHZ_BOUND_SECONDS, waits
    assert roomy.idle()


# --- the limit, named in each endpoint family's envelope

CAP = 1000


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    with serve_chat(tmp_path_factory.mktemp("capped"), chat_max_input_chars=CAP) as server:
        yield server


LIMIT = f"the limit is {CAP} characters per request (chat_max_input_chars)"


@pytest.mark.parametrize("path", [OPENAI, VENDOR, VENDOR_ALIAS, FUSION])
def test_every_chat_endpoint_names_the_limit(capped: ChatServer, path: str) -> None:
    # Two messages, each well under the per-message cap, together one character over.
    messages = [user("a" * 500), {"role": "assistant", "content": "b" * 100},
                user("c" * (CAP - 599))]
    r = post(capped, path, {"messages": messages, "stream": True})
    assert r.status_code == 400, r.text[:500]
    msg = error_text(path, r)
    assert msg == ("messages: the request has 1001 characters of text (messages, tool calls "
                   f"and tool definitions together); {LIMIT}")
    if path == OPENAI:
        assert r.json()["error"]["param"] == "messages"


def test_the_limit_counts_tool_calls_and_tool_definitions(capped: ChatServer) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "description": "d" * 400,
                                             "parameters": {"type": "object"}}}
    call = {"id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": json.dumps({"q": "x" * 300})}}
    messages = [user("what is x?"), {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "y" * 300}]
    r = post(capped, OPENAI, {"messages": messages, "tools": [tool]})
    assert r.status_code == 400, r.text[:500]
    error = r.json()["error"]
    # The messages alone fit; the tool definitions pushed the request over.
    assert error["param"] == "tools"
    assert error["message"].startswith("tools: the request has ") and LIMIT in error["message"]


def test_a_request_at_the_limit_is_answered(capped: ChatServer) -> None:
    # A run of "=" is few tokens (about 60 characters each), so the prompt reads quickly.
    body = {"messages": [user("=" * CAP)], "max_tokens": 1}
    r = post(capped, OPENAI, body)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["usage"]["completion_tokens"] <= 1
    r = post(capped, VENDOR, {"messages": body["messages"], "max_new_tokens": 1})
    assert r.status_code == 200 and r.json()["code"] == 200, r.text[:500]
