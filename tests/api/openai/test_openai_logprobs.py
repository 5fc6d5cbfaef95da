"""``logprobs`` / ``top_logprobs`` through the official ``openai`` client, on the real model."""

from __future__ import annotations

import math
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat.chat_completion_token_logprob import ChatCompletionTokenLogprob

from tests.chat_support import ChatServer

STORY = [{"role": "user", "content": "Write a long story about a dragon."}]
CHINESE = [{"role": "system", "content": "你是一个中文助手。只用中文回答。"},
           {"role": "user", "content": "北京是哪个国家的首都？"}]


@pytest.fixture(scope="module")
def client(chat: ChatServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{chat.url}/v1", api_key=chat.key, max_retries=0) as c:
        yield c


def check_entries(entries: list[ChatCompletionTokenLogprob], content: str, top: int) -> None:
    """Every entry well formed, and together they spell the content byte for byte."""
    assert b"".join(bytes(e.bytes or []) for e in entries) == content.encode()
    for e in entries:
        assert e.logprob <= 0
        assert len(e.top_logprobs) == top
        values = [t.logprob for t in e.top_logprobs]
        assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
        for t in [e, *e.top_logprobs]:
            data = bytes(t.bytes or [])
            try:
                assert data.decode("utf-8") == t.token
            except UnicodeDecodeError:  # part of a character: OpenAI's bytes: notation
                assert t.token == "bytes:" + "".join(f"\\x{b:02x}" for b in data)
        if top:
            assert sum(math.exp(v) for v in values) <= 1 + 1e-6


def test_greedy_tokens_are_the_top_choice_stream_or_not(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=12,
                                       temperature=0, logprobs=True, top_logprobs=5)
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert r.usage is not None and len(entries) == r.usage.completion_tokens == 12
    check_entries(entries, choice.message.content or "", 5)
    for e in entries:  # greedy: the chosen token is the likeliest one
        assert e.top_logprobs[0].token == e.token
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob, abs=1e-6)
    assert entries[0].logprob > -5  # a real distribution, not a constant

    chunks = list(client.chat.completions.create(
        model="smollm2", messages=STORY, max_tokens=12, temperature=0, logprobs=True,
        top_logprobs=5, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs
                for e in c.choices[0].logprobs.content or []]
    assert [e.token for e in streamed] == [e.token for e in entries]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in entries],
                                                          abs=1e-4)
    for c in chunks:  # each chunk carries the tokens of its own text
        if c.choices and c.choices[0].logprobs:
            text = "".join(e.token for e in c.choices[0].logprobs.content or [])
            assert text == c.choices[0].delta.content


def test_sampled_tokens_and_split_characters(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2", messages=CHINESE, max_tokens=24,
                                       temperature=0, logprobs=True)
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    check_entries(entries, choice.message.content or "", 0)
    # Most Chinese characters take two tokens, each alone not UTF-8.
    assert any(e.token.startswith("bytes:") for e in entries)

    r = client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=10,
                                       temperature=1.0, seed=3, logprobs=True, top_logprobs=20)
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    check_entries(choice.logprobs.content, choice.message.content or "", 20)
    for e in choice.logprobs.content:
        listed = {t.token: t.logprob for t in e.top_logprobs}
        if e.token in listed:
            assert listed[e.token] == pytest.approx(e.logprob, abs=1e-6)
        else:  # sampled outside the top 20: less likely than all of them
            assert e.logprob <= e.top_logprobs[-1].logprob


def test_without_logprobs_there_are_none(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=2)
    assert r.choices[0].logprobs is None


def test_bad_logprobs_requests_are_400s(client: openai.OpenAI) -> None:
    cases = [({"top_logprobs": 3}, "top_logprobs: needs logprobs: true"),
             ({"logprobs": True, "top_logprobs": 21}, r"top_logprobs: must be in \[0, 20\]"),
             ({"logprobs": True, "top_logprobs": -1}, "top_logprobs")]
    for kwargs, needle in cases:
        with pytest.raises(openai.BadRequestError, match=needle) as caught:
            client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=2,
                                           **kwargs)
        assert caught.value.body["param"] == "top_logprobs"  # type: ignore[index]
