"""Server-sent events and client-disconnect handling shared by both chat APIs.

A chat generation holds one of the model's few parallel slots, so a client that goes away must
stop it at once, not when the next token fails to send.  Both helpers here watch the ASGI
``receive`` channel for ``http.disconnect`` while the generation runs and close the engine
stream the moment it arrives, streaming or not, and also while still waiting in the queue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ronghe.engines.llm.base import ChatResult, ChatStream, collect

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = "data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> str:
    """One data-only event: ``data: <json>`` and a blank line (clients split on ``data:``)."""
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


# Stands for the text while the rest of a chunk is encoded; private-use characters, so no id
# or model name holds it (and if one did, text_events notices and encodes chunks whole).
_TEXT_MARK = "\ue000ronghe-text\ue000"
_encode_text = json.JSONEncoder(ensure_ascii=False).encode  # a str: just the quoted string


def text_events(build: Callable[[str], dict[str, Any]]) -> Callable[[str], str]:
    """A function giving ``sse(build(text))`` for any text, byte for byte, with everything
    around the text encoded once.

    A stream sends an event per token or two, and each of the streams a decode step feeds
    gets one: encoding the whole chunk (id, model, the choice list) every time repeats the
    same work, so only the text is encoded per event.
    """
    head, mark, tail = sse(build(_TEXT_MARK)).partition(_encode_text(_TEXT_MARK))
    if not mark or _TEXT_MARK in head + tail:
        return lambda text: sse(build(text))
    return lambda text: head + _encode_text(text) + tail


class EventStream(StreamingResponse):
    """An SSE response that closes its engine stream as soon as the client disconnects."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str], stream: ChatStream) -> None:
        super().__init__(events, headers=SSE_HEADERS, media_type=self.media_type)
        self._events = events
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as group:

                async def respond() -> None:
                    nonlocal error
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass  # the socket closed under us: the client is gone
                    except Exception as exc:  # re-raised below, outside the task group
                        error = exc
                    group.cancel_scope.cancel()

                group.start_soon(respond)
                await _until_disconnect(receive)
                group.cancel_scope.cancel()
            if error is not None:
                raise error
        finally:
            await self._stream.aclose()
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


async def collect_or_disconnect(request: Request, stream: ChatStream) -> ChatResult | None:
    """The whole generation, or None if the client went away first (generation stopped)."""
    results = await collect_all_or_disconnect(request, [stream])
    return None if results is None else results[0]


async def collect_all_or_disconnect(request: Request,
                                    streams: list[ChatStream]) -> list[ChatResult] | None:
    """Every generation (n > 1 choices run side by side), or None if the client went away."""
    result: list[ChatResult] | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as group:

        async def run() -> None:
            nonlocal result, error
            try:
                # collect closes each stream however it ends, and gather cancels the others
                # when one fails.
                result = list(await asyncio.gather(*[collect(s) for s in streams]))
            except Exception as exc:  # re-raised below so error handlers see the real type
                error = exc
            group.cancel_scope.cancel()

        async def watch() -> None:
            await _until_disconnect(request.receive)
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(watch)
    if error is not None:
        raise error
    return result


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
