"""The upstream engine against a real OpenAI-compatible server: a second Ronghe on uvicorn.

llama-cpp-python's own server needs extras (sse-starlette) that are not installed, and a
second Ronghe serves the same OpenAI API on the real model, so that is the upstream here.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ronghe.app import create_app
from ronghe.engines.llm.base import (
    ChatMessage,
    GenerationParams,
    ResponseFormat,
    Tool,
    collect,
)
from ronghe.engines.llm.llama_cpp import LlamaCppEngine
from ronghe.engines.llm.upstream import UpstreamEngine
from ronghe.errors import BadRequest, Busy, Timeout, UpstreamError
from tests.chat_support import LiveServer, chat_engine, chat_settings, eog_tokens, wait_for
from tests.conftest import make_account

HELLO = [ChatMessage("user", "Say this is a test!")]
STORY = [ChatMessage("user", "Write a long story about a dragon.")]


@dataclass
class Upstream:
    url: str
    key: str
    engine: LlamaCppEngine  # the model behind the upstream server

    def client(self, **kwargs: object) -> UpstreamEngine:
        options: dict[str, object] = {"api_key": self.key, "model": "smollm2"}
        options.update(kwargs)
        return UpstreamEngine("remote", f"{self.url}/v1", **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    data: Path = tmp_path_factory.mktemp("upstream")
    app = create_app(chat_settings(data, chat_queue_size=0, chat_parallel=1,
                                   chat_request_timeout_seconds=3))
    key = make_account(app).api_key
    with LiveServer(app) as server:
        yield Upstream(server.url, key, chat_engine(app))


async def test_stream_passes_through_with_usage(upstream: Upstream) -> None:
    engine = upstream.client()
    try:
        params = GenerationParams(HELLO, temperature=0, max_new_tokens=12)
        # The same prompt before each run leaves the upstream's KV cache in the same state,
        # so both greedy runs compute identical logits (see settle() in test_llama_cpp).
        await collect(await upstream.engine.start(params))
        deltas = [d async for d in await engine.start(params)]
        final = deltas[-1]
        assert final.finish_reason in ("stop", "length") and final.usage is not None
        assert final.usage.prompt_tokens == await upstream.engine.count_tokens(HELLO)
        assert len(deltas) > 2 and all(d.finish_reason is None for d in deltas[:-1])
        direct = await collect(await upstream.engine.start(params))
        assert "".join(d.text for d in deltas) == direct.text
        assert direct.usage == final.usage
    finally:
        await engine.aclose()


async def test_options_reach_the_upstream_model(upstream: Upstream) -> None:
    engine = upstream.client()
    try:
        bias = {t: -100.0 for t in eog_tokens()}
        result = await collect(await engine.start(GenerationParams(
            STORY, temperature=0, max_new_tokens=9, logit_bias=bias, repetition_penalty=1.1,
            logprobs=True, top_logprobs=2)))
        assert result.finish_reason == "length"
        assert result.usage is not None and result.usage.completion_tokens == 9
        # Logprobs went upstream and came back, one per token, spelling the text.
        assert len(result.logprobs) == 9
        assert b"".join(e.token for e in result.logprobs).decode() == result.text
        assert all(e.logprob <= 0 and len(e.top) == 2 for e in result.logprobs)
    finally:
        await engine.aclose()


async def test_wrong_key_is_reported_as_an_upstream_error(upstream: Upstream) -> None:
    engine = upstream.client(api_key="not-a-key")
    try:
        with pytest.raises(UpstreamError, match="refused Ronghe's API key") as info:
            await engine.start(GenerationParams(HELLO))
        assert info.value.status_code == 502 and "invalid" in info.value.msg
    finally:
        await engine.aclose()


async def test_unknown_upstream_model_names_what_upstream_said(upstream: Upstream) -> None:
    engine = upstream.client(model="llama-70b")
    try:
        with pytest.raises(BadRequest, match="unknown chat model 'llama-70b'; configured: smollm2"):
            await engine.start(GenerationParams(HELLO))
    finally:
        await engine.aclose()


async def test_wrong_path_is_a_clear_404(upstream: Upstream) -> None:
    engine = UpstreamEngine("remote", f"{upstream.url}/nothing", api_key=upstream.key)
    try:
        with pytest.raises(UpstreamError, match="no such model or endpoint"):
            await engine.start(GenerationParams(HELLO))
    finally:
        await engine.aclose()


async def test_unreachable_server() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = UpstreamEngine("remote", f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(UpstreamError, match=f"at http://127.0.0.1:{port}/v1 is unreachable"):
            await engine.start(GenerationParams(HELLO))
    finally:
        await engine.aclose()


async def test_busy_upstream_and_cancel_pass_through(upstream: Upstream) -> None:
    """Closing our stream closes the upstream request, which stops the upstream model."""
    engine = upstream.client()
    other = upstream.client()
    try:
        before = upstream.engine.stats()
        bias = {t: -100.0 for t in eog_tokens()}
        stream = await engine.start(GenerationParams(STORY, max_new_tokens=2000,
                                                     logit_bias=bias))
        await stream.__anext__()
        # The upstream runs one generation and queues none: a second request is refused with 503.
        with pytest.raises(Busy, match="is busy"):
            await other.start(GenerationParams(HELLO, max_new_tokens=5))
        closed = time.monotonic()
        await stream.aclose()
        stopped = await asyncio.to_thread(
            wait_for, lambda: upstream.engine.stats().running == 0, 5.0)
        assert stopped and time.monotonic() - closed < 2.0
        assert upstream.engine.stats().cancelled == before.cancelled + 1
    finally:
        await engine.aclose()
        await other.aclose()


async def test_error_after_the_stream_began_keeps_its_meaning(upstream: Upstream) -> None:
    """The upstream times out (after 3 s) mid-stream: that stays a timeout, with its words."""
    engine = upstream.client()
    try:
        bias = {t: -100.0 for t in eog_tokens()}
        stream = await engine.start(GenerationParams(STORY, max_new_tokens=4000,
                                                     logit_bias=bias))
        texts = []
        with pytest.raises(Timeout, match=r"timed out \(HTTP 504\): mid-stream: generation took"):
            async for delta in stream:
                texts.append(delta.text)
        assert "".join(texts)  # text had arrived before the error
    finally:
        await engine.aclose()


async def test_tools_and_response_format_pass_through(tmp_path: Path) -> None:
    # Its own upstream: the shared one times out after 3 s, less than a tool prompt takes to
    # read on a busy CPU.
    app = create_app(chat_settings(tmp_path))
    with LiveServer(app) as server:
        await _tools_round_trip(Upstream(server.url, make_account(app).api_key,
                                         chat_engine(app)))


async def _tools_round_trip(upstream: Upstream) -> None:
    weather = Tool("get_weather", "Weather in a city", {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
        "required": ["city"]})
    engine = upstream.client()
    try:
        asked = [ChatMessage("user", "What's the weather in Paris?")]
        called = await collect(await engine.start(GenerationParams(
            asked, temperature=0, max_new_tokens=80, tools=[weather], tool_choice="get_weather")))
        assert called.finish_reason == "tool_calls" and len(called.tool_calls) == 1
        call = called.tool_calls[0]
        assert call.name == "get_weather" and call.id.startswith("call_")
        assert set(json.loads(call.arguments)) == {"city"}
        # The call and its result go back upstream and the conversation continues.
        history = [*asked, ChatMessage("assistant", "", tool_calls=called.tool_calls),
                   ChatMessage("tool", '{"sky": "sunny"}', tool_call_id=call.id)]
        reply = await collect(await engine.start(GenerationParams(
            history, temperature=0, max_new_tokens=8, tools=[weather], tool_choice="none")))
        assert reply.text and not reply.tool_calls
        shaped = await collect(await engine.start(GenerationParams(
            asked, temperature=0, max_new_tokens=80,
            response_format=ResponseFormat("json_schema", {"enum": ["yes", "no"]}))))
        assert json.loads(shaped.text) in ("yes", "no")
    finally:
        await engine.aclose()
