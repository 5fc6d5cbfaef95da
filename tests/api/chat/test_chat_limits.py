"""Full queues, clients that leave, timeouts and upstream models, end to end over HTTP.

A generation that cannot end early is started through the OpenAI endpoint with a logit bias
that forbids the end-of-generation tokens; the vendor API has no such knob, so vendor
requests are the ones that queue behind it, leave, or time out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ronghe.settings import ChatModelSpec
from tests.chat_support import ChatServer, never_stop, serve_chat, wait_for

PATH = "/nlp/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say this is a test!"}]


@contextmanager
def hold_model(chat: ChatServer, until_text: bool = True) -> Iterator[Iterator[str]]:
    """Keeps the model busy with an endless stream until the block ends (client leaves).

    Yields the stream's remaining lines; with ``until_text`` it first waits for generated
    text, otherwise only until the request holds its place (the headers are sent then).
    """
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Tell a story."}],
            "max_tokens": 4000, "stream": True, "logit_bias": never_stop()}
    with httpx.stream("POST", f"{chat.url}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {chat.key}"}) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        if until_text:
            while '"delta":{"content":' not in next(lines):
                pass
            assert chat.engine.stats().running == 1
        yield lines


def vendor(**extra: object) -> dict[str, object]:
    return {"messages": HELLO, "max_new_tokens": 8, **extra}


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def test_full_queue_is_a_503_envelope(tmp: Path) -> None:
    with serve_chat(tmp, chat_queue_size=0, chat_parallel=1) as chat:
        before = chat.engine.stats()
        with hold_model(chat):
            r = httpx.post(chat.url + PATH, json=vendor(), timeout=30,
                           headers={"Authorization": chat.key})
            assert r.status_code == 503 and r.headers["retry-after"]
            body = r.json()
            assert body["code"] == 503 and body["data"] is None and "busy" in body["msg"]
        # Leaving the stream stopped the endless generation within moments.
        assert wait_for(chat.idle, 2.0)
        after = chat.engine.stats()
        assert after.cancelled == before.cancelled + 1 and after.rejected == before.rejected + 1


def test_clients_that_leave_the_queue_free_their_place(tmp: Path) -> None:
    with serve_chat(tmp, chat_queue_size=4, chat_parallel=1) as chat:
        engine = chat.engine
        with hold_model(chat):
            # Streaming: headers arrive at once, then the client goes before any token.
            with httpx.stream("POST", chat.url + PATH, json=vendor(stream=True),
                              headers={"Authorization": chat.key}, timeout=30) as r:
                assert r.status_code == 200
                assert wait_for(lambda: engine.stats().waiting == 1, 2.0)
            assert wait_for(lambda: engine.stats().waiting == 0, 2.0)
            # Not streaming: the client gives up waiting.
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(chat.url + PATH, json=vendor(), timeout=0.5,
                           headers={"Authorization": chat.key})
            assert wait_for(lambda: engine.stats().waiting == 0, 2.0)
            assert engine.stats().running == 1  # the first generation was never disturbed
        assert wait_for(chat.idle, 2.0)
        assert engine.stats().cancelled == 3 and engine.stats().completed == 0


def test_timeout_after_the_stream_began_is_reported_in_band(tmp: Path) -> None:
    with serve_chat(tmp, chat_request_timeout_seconds=1.0, chat_parallel=1) as chat:
        raw: list[bytes] = []

        # A story cannot end within the moments the queued request has left once it starts.
        story = vendor(stream=True, max_new_tokens=2000,
                       messages=[{"role": "user", "content": "Write a long story."}])

        def queued_stream() -> None:
            with httpx.stream("POST", chat.url + PATH, json=story,
                              headers={"Authorization": chat.key}, timeout=30) as r:
                raw.append(r.read())

        # The vendor request queues right behind the held one, so by the time the held one
        # times out (after 1 s) the vendor request's own second is all but spent too.
        with hold_model(chat, until_text=False) as held:
            waiter = threading.Thread(target=queued_stream)
            waiter.start()
            tail = "".join(held)
        waiter.join(30)
        assert '"code":504' in tail and "longer than 1 s" in tail
        parts = raw[0].decode().strip().split("\n\n")
        assert parts[-1] == "data: [DONE]"
        error = json.loads(parts[-2].removeprefix("data: "))
        assert error["code"] == 504 and error["data"]["status"] == 3
        assert "longer than 1 s" in error["msg"]


def test_upstream_models_through_the_vendor_api(chat: ChatServer, tmp: Path) -> None:
    """A second Ronghe whose models are the first one's, reached as an upstream."""
    models = [
        ChatModelSpec(name="smollm2", path="bundled:smollm2"),
        ChatModelSpec(name="remote", engine="upstream", base_url=f"{chat.url}/v1",
                      api_key=chat.key, upstream_model="smollm2"),
        ChatModelSpec(name="remote-bad-key", engine="upstream", base_url=f"{chat.url}/v1",
                      api_key="not-a-key", upstream_model="smollm2"),
    ]
    with serve_chat(tmp, chat_models=models) as front:
        auth = {"Authorization": front.key}
        r = httpx.post(front.url + PATH, json=vendor(model="remote"), headers=auth,
                       timeout=60)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["choices"][0]["message"] and data["usage"]["prompt_tokens"] == 36
        with httpx.stream("POST", front.url + PATH, headers=auth, timeout=60,
                          json=vendor(model="remote", stream=True)) as s:
            text = s.read().decode()
        assert text.endswith("data: [DONE]\n\n")
        assert '"finish_reason":"stop"' in text or '"finish_reason":"length"' in text
        r = httpx.post(front.url + PATH, json=vendor(model="remote-bad-key"),
                       headers=auth, timeout=60)
        assert r.status_code == 502
        assert "refused Ronghe's API key" in r.json()["msg"]
        assert r.json()["data"] is None
