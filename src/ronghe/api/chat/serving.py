"""Vendor chat: request -> engine -> ``{code, msg, data}`` envelope, whole or as SSE chunks.

Errors before the first byte (bad model, full queue, prompt too long) are raised and become
the error envelope with a matching HTTP status.  Errors after the stream has begun can only
be reported in-band: one chunk with ``code`` != 200, ``msg`` and ``data.status`` (1 internal,
3 timeout, 4 content violation), then ``[DONE]``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import structlog
from fastapi import Request
from fastapi.responses import Response

from ronghe.api.chat.params import check_input_size
from ronghe.api.chat.protocol import (
    CompletionResponse,
    VendorChatRequest,
    chunk_body,
    completion,
    stream_error_body,
)
from ronghe.api.chat.state import ChatState
from ronghe.api.chat.streaming import (
    DONE,
    EventStream,
    collect_or_disconnect,
    sse,
    text_events,
)
from ronghe.engines.llm.base import ChatStream
from ronghe.errors import ContentViolation, RongheError, Timeout

log = structlog.get_logger(__name__)

# 499: the client closed the request (nginx's convention); nobody receives this response.
CLIENT_GONE = 499


def status_of(exc: BaseException) -> int:
    if isinstance(exc, Timeout):
        return 3
    if isinstance(exc, ContentViolation):
        return 4
    return 1


async def complete(request: Request, body: VendorChatRequest,
                   chat: ChatState) -> CompletionResponse | Response:
    params = body.to_params()
    check_input_size(params, chat.max_input_chars)
    engine = chat.engines.get(body.model)
    stream = chat.metrics.watch(engine.name, "vendor", await engine.start(params))
    rid = uuid.uuid4().hex
    if body.stream:
        return EventStream(_events(rid, stream), stream)
    result = await collect_or_disconnect(request, stream)
    if result is None:
        return Response(status_code=CLIENT_GONE)
    status = 4 if result.finish_reason == "content_filter" else 0
    return completion(rid, result.text, result.finish_reason, result.usage, status)


async def _events(rid: str, stream: ChatStream) -> AsyncIterator[str]:
    text_chunk = text_events(lambda text: chunk_body(rid, text))  # encodes only the text
    try:
        async for delta in stream:
            if delta.finish_reason is None:
                yield text_chunk(delta.text)
            else:
                status = 4 if delta.finish_reason == "content_filter" else 0
                yield sse(chunk_body(rid, delta.text, delta.finish_reason, delta.usage,
                                     status))
    except RongheError as exc:
        yield sse(stream_error_body(rid, exc.status_code, exc.msg, status_of(exc)))
    except Exception:
        log.exception("chat stream failed")
        yield sse(stream_error_body(rid, 500, "internal error; see the server log", 1))
    yield DONE
