"""OpenAI chat: request -> engine -> ``chat.completion`` object or ``chat.completion.chunk`` SSE.

The stream is what the official client expects: a first chunk with the role, content
chunks, a chunk with ``finish_reason`` and an empty delta, a usage chunk (``choices: []``)
when ``stream_options.include_usage`` asks for it, then ``[DONE]``.  An error after the stream
has begun is sent as ``data: {"error": {...}}``, which the client raises as ``APIError``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import structlog
from fastapi import Request
from fastapi.responses import Response

from ronghe.api.chat.serving import CLIENT_GONE
from ronghe.api.chat.state import ChatState
from ronghe.api.chat.streaming import DONE, EventStream, collect_or_disconnect, sse
from ronghe.api.envelopes import Family, error_body
from ronghe.api.openai.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    chunk_body,
    completion,
    now,
    usage_chunk_body,
)
from ronghe.engines.llm.base import ChatStream
from ronghe.errors import RongheError

log = structlog.get_logger(__name__)


async def complete(request: Request, body: ChatCompletionRequest,
                   chat: ChatState) -> ChatCompletion | Response:
    engine = chat.engines.get(body.model)
    stream = chat.metrics.watch(engine.name, "openai", await engine.start(body.to_params()))
    rid = f"chatcmpl-{uuid.uuid4().hex}"
    created = now()
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _events(rid, engine.name, created, stream, include_usage)
        return EventStream(events, stream)
    result = await collect_or_disconnect(request, stream)
    if result is None:
        return Response(status_code=CLIENT_GONE)
    return completion(rid, engine.name, created, result.text, result.finish_reason,
                      result.usage)


async def _events(rid: str, model: str, created: int, stream: ChatStream,
                  include_usage: bool) -> AsyncIterator[str]:
    yield sse(chunk_body(rid, model, created, {"role": "assistant", "content": ""}))
    try:
        async for delta in stream:
            if delta.text:
                yield sse(chunk_body(rid, model, created, {"content": delta.text}))
            if delta.finish_reason is not None:
                yield sse(chunk_body(rid, model, created, {}, delta.finish_reason))
                if include_usage:
                    yield sse(usage_chunk_body(rid, model, created, delta.usage))
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
