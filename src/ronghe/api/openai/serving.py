"""OpenAI chat: request -> engine -> ``chat.completion`` object or ``chat.completion.chunk`` SSE.

The stream is what the official client expects: a first chunk with the role, content
chunks (and ``tool_calls`` pieces: the first of each call with its id and name, then argument
text), a chunk with ``finish_reason`` and an empty delta, a usage chunk (``choices: []``)
when ``stream_options.include_usage`` asks for it, then ``[DONE]``.  With ``n`` > 1 the n
generations run side by side (the engine's parallel slots) and their chunks interleave, each
carrying its choice's ``index``.  An error after the stream has begun is sent as
``data: {"error": {...}}``, which the client raises as ``APIError``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterable

import structlog
from fastapi import Request
from fastapi.responses import Response

from ronghe.api.chat.params import check_input_size
from ronghe.api.chat.serving import CLIENT_GONE
from ronghe.api.chat.state import ChatState
from ronghe.api.chat.streaming import (
    DONE,
    EventStream,
    collect_all_or_disconnect,
    sse,
    text_events,
)
from ronghe.api.envelopes import Family, error_body
from ronghe.api.openai.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    chunk_body,
    completion,
    now,
    tool_call_delta,
    usage_chunk_body,
)
from ronghe.engines.llm.base import ChatDelta, ChatStream, Usage
from ronghe.errors import RongheError

log = structlog.get_logger(__name__)


async def complete(request: Request, body: ChatCompletionRequest,
                   chat: ChatState) -> ChatCompletion | Response:
    params = body.to_params()
    check_input_size(params, chat.max_input_chars)
    engine = chat.engines.get(body.model)
    streams: list[ChatStream] = []
    try:
        for i in range(body.n):
            # Choices must differ: each gets its own seed (seed, seed+1, …) when one is set.
            seeded = params if params.seed is None or i == 0 else dataclasses.replace(
                params, seed=params.seed + i)
            streams.append(chat.metrics.watch(engine.name, "openai",
                                              await engine.start(seeded)))
    except BaseException:
        for started in streams:
            await started.aclose()
        raise
    stream = streams[0] if len(streams) == 1 else _Merged(streams)
    rid = f"chatcmpl-{uuid.uuid4().hex}"
    created = now()
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _events(rid, engine.name, created, stream, include_usage)
        return EventStream(events, stream)
    results = await collect_all_or_disconnect(request, streams)
    if results is None:
        return Response(status_code=CLIENT_GONE)
    return completion(rid, engine.name, created, results, _total(r.usage for r in results),
                      logprobs=body.logprobs)


def _total(usages: Iterable[Usage | None]) -> Usage | None:
    """One usage for n choices: the prompt once, every choice's completion tokens."""
    known = [u for u in usages if u is not None]
    if not known:
        return None
    return Usage(known[0].prompt_tokens, sum(u.completion_tokens for u in known))


class _Merged:
    """n engine streams as one: deltas tagged with their choice index, in arrival order."""

    def __init__(self, streams: list[ChatStream]) -> None:
        self._streams = streams
        self._queue: asyncio.Queue[tuple[int, ChatDelta | BaseException | None]] = (
            asyncio.Queue())
        self._tasks: list[asyncio.Task[None]] = []
        self._open = len(streams)
        self.count = len(streams)
        self.index = 0  # the choice of the delta last returned

    def __aiter__(self) -> _Merged:
        return self

    async def _pump(self, i: int, stream: ChatStream) -> None:
        try:
            async for delta in stream:
                await self._queue.put((i, delta))
        except Exception as exc:  # handed to the consumer, which reports it
            await self._queue.put((i, exc))
        await self._queue.put((i, None))

    async def __anext__(self) -> ChatDelta:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._pump(i, s))
                           for i, s in enumerate(self._streams)]
        while self._open:
            i, item = await self._queue.get()
            if item is None:
                self._open -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            self.index = i
            return item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for stream in self._streams:
            await stream.aclose()


async def _events(rid: str, model: str, created: int, stream: ChatStream,
                  include_usage: bool) -> AsyncIterator[str]:
    merged = stream if isinstance(stream, _Merged) else None
    choices = merged.count if merged else 1
    for i in range(choices):
        yield sse(chunk_body(rid, model, created, {"role": "assistant", "content": ""},
                             index=i))
    # Text without logprobs, the chunk nearly every token makes: only the text is encoded.
    text_chunk = [text_events(lambda text, i=i: chunk_body(rid, model, created,
                                                           {"content": text}, index=i))
                  for i in range(choices)]
    usages: list[Usage | None] = []
    try:
        async for delta in stream:
            i = merged.index if merged else 0
            # Logprobs go with the chunk of their tokens' text, or with the call pieces made
            # of it, or alone in an empty delta (tokens of a character cut off at the end).
            logprobs = delta.logprobs
            if delta.text or (logprobs and not delta.tool_calls):
                yield (sse(chunk_body(rid, model, created, {"content": delta.text}, index=i,
                                      logprobs=logprobs))
                       if logprobs else text_chunk[i](delta.text))
                logprobs = ()
            if delta.tool_calls:
                pieces = [tool_call_delta(p) for p in delta.tool_calls]
                yield sse(chunk_body(rid, model, created, {"tool_calls": pieces}, index=i,
                                     logprobs=logprobs))
            if delta.finish_reason is not None:
                yield sse(chunk_body(rid, model, created, {}, delta.finish_reason, index=i))
                usages.append(delta.usage)
        if include_usage:
            yield sse(usage_chunk_body(rid, model, created, _total(usages)))
    except RongheError as exc:
        yield sse(error_body(Family.OPENAI, exc.status_code, exc.msg, exc.field))
    except Exception:
        log.exception("chat stream failed")
        yield sse(error_body(Family.OPENAI, 500, "internal error; see the server log"))
    yield DONE


def list_models(chat: ChatState) -> ModelList:
    cards = [ModelCard(id=name, context_length=chat.engines.get(name).context_length())
             for name in chat.engines.names()]
    return ModelList(data=cards)
