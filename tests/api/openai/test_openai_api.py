"""The official ``openai`` package, unmodified, against Ronghe's ``/v1`` on the real model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.chat_support import ChatServer, never_stop, wait_for

HELLO = [{"role": "user", "content": "Say this is a test!"}]
STORY = [{"role": "user", "content": "Write a long story about a dragon."}]


@pytest.fixture(scope="module")
def client(chat: ChatServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{chat.url}/v1", api_key=chat.key, max_retries=0) as c:
        yield c


def settle(client: openai.OpenAI) -> None:
    """Same KV-cache state before runs that must match (see test_llama_cpp.settle)."""
    client.chat.completions.create(model="smollm2", max_tokens=1, temperature=0,
                                   messages=[{"role": "user", "content": "Hi"}])


def test_create_without_stream(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=16)
    assert r.object == "chat.completion" and r.model == "smollm2" and r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.prompt_tokens == 36
    assert 0 < r.usage.completion_tokens <= 16


def test_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=16, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text.strip() and finishes[-1] in ("stop", "length") and set(finishes[:-1]) == {None}
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.prompt_tokens == 36 and 0 < usage.completion_tokens <= 16


def test_stream_without_usage_has_none(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=4,
                                                 stream=True))
    assert all(c.choices and c.usage is None for c in chunks)


def test_max_tokens_seed_and_stop(client: openai.OpenAI) -> None:
    def run(**kwargs: object) -> openai.types.chat.ChatCompletion:
        settle(client)
        return client.chat.completions.create(model="smollm2", messages=STORY, **kwargs)

    limited = run(max_tokens=5, logit_bias=never_stop())
    assert limited.choices[0].finish_reason == "length"
    assert limited.usage is not None and limited.usage.completion_tokens == 5
    seeded = [run(max_tokens=12, seed=42, temperature=1.0).choices[0].message.content
              for _ in range(2)]
    assert seeded[0] == seeded[1]
    full = run(max_tokens=24, temperature=0).choices[0].message.content or ""
    word = " " + full.split()[3]
    cut = run(max_tokens=24, temperature=0, stop=[word, "@@"])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == full[: full.index(word)]


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["smollm2"]
    assert models.data[0].owned_by == "ronghe"


def test_errors_are_openai_shaped(chat: ChatServer, client: openai.OpenAI) -> None:
    bad = openai.OpenAI(base_url=f"{chat.url}/v1", api_key="wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model="smollm2", messages=HELLO)
    assert auth.value.status_code == 401
    with pytest.raises(openai.BadRequestError, match="configured: smollm2") as unknown:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert unknown.value.body["param"] == "model"  # type: ignore[index]
    # n > 1 and tools (test_openai_structured) and logprobs (test_openai_logprobs) work.
    for kwargs, field in [({"temperature": 3}, "temperature"), ({"n": 9}, "n"),
                          ({"top_logprobs": 2}, "top_logprobs"),
                          ({"tools": [{"type": "function", "function": {"name": "f g"}}]}, "tools"),
                          ({"stop": ["a", "b", "c", "d", "e"]}, "stop")]:
        with pytest.raises(openai.BadRequestError, match=field):
            client.chat.completions.create(model="smollm2", messages=HELLO, **kwargs)


def test_closing_the_stream_stops_generation(chat: ChatServer, client: openai.OpenAI) -> None:
    before = chat.engine.stats()
    stream = client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=3000,
                                            stream=True, logit_bias=never_stop())
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    assert wait_for(chat.idle, 1.0)
    after = chat.engine.stats()
    assert after.cancelled == before.cancelled + 1 and after.completed == before.completed


def test_client_timeout_stops_generation(chat: ChatServer) -> None:
    before = chat.engine.stats()
    body = {"model": "smollm2", "messages": STORY, "max_tokens": 3000,
            "logit_bias": never_stop()}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{chat.url}/v1/chat/completions", json=body, timeout=0.5,
                   headers={"Authorization": f"Bearer {chat.key}"})
    assert wait_for(chat.idle, 1.0)
    assert chat.engine.stats().cancelled == before.cancelled + 1
