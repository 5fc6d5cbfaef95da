"""Fusion: decide whether to draw, then chat or render an ordinary image task and answer its URL.

A drawing is submitted through the same path as ``task_submit`` (``ronghe.images.submit``),
so it is a durable task of the user's: in their history, under their limits, resumed after
a restart.  The request waits for it, polling the task table; a client that goes away does
not cancel it.  While it renders, a stream sends SSE comment heartbeats (``: progress 0.40``)
that every client ignores and every proxy sees as traffic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog
from fastapi import Request
from fastapi.responses import Response

from ronghe.api.chat.params import check_input_size
from ronghe.api.chat.protocol import usage_info
from ronghe.api.chat.serving import CLIENT_GONE, status_of
from ronghe.api.chat.state import ChatState
from ronghe.api.chat.streaming import DONE, EventStream, collect_or_disconnect, sse
from ronghe.api.fusion.protocol import (
    DRAWING_REQUEST,
    FusionRequest,
    FusionResponse,
    answer_body,
    chunk,
    usage_body,
)
from ronghe.api.images.serving import image_urls
from ronghe.api.waiting import until_ended
from ronghe.db.models import User
from ronghe.engines.llm.base import ChatEngine, ChatMessage, ChatStream, GenerationParams, Usage
from ronghe.engines.llm.intent import Decision, decide
from ronghe.errors import BadRequest, Forbidden, RongheError, Timeout, Unauthorized, UpstreamError
from ronghe.images import submit as images
from ronghe.jobs import Status, TaskView
from ronghe.services import Services

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 2.0
# A drawing that takes longer is still a task: the answer then says its id, to poll.
WAIT_SECONDS = 900.0


class Refusal(Exception):
    """Answered as content with ``code: 0``, as the later edition does."""

    def __init__(self, content: str) -> None:
        super().__init__(content)
        self.content = content


class _Nothing:
    """The drawing path has no chat stream for EventStream to close."""

    async def aclose(self) -> None:
        return None


async def answer(request: Request, body: FusionRequest, user: User, chat: ChatState,
                 services: Services) -> FusionResponse | Response:
    params = body.to_params()
    check_input_size(params, chat.max_input_chars)
    if body.mh_key:
        await anyio.to_thread.run_sync(_check_image_token, services, user, body.mh_key)
    engine, missing = _engine(chat, body)
    decision = await decide(params.messages, engine)
    log.info("fusion decision", draw=decision.draw, by=decision.by)
    rid = uuid.uuid4().hex
    if not decision.draw or not body.output_img:
        content = DRAWING_REQUEST if decision.draw else None
        if engine is None and content is None:
            assert missing is not None
            raise missing
        return await _chat(request, body, params, chat, engine, rid, content)
    usage = usage_body(Usage(await _prompt_tokens(engine, params.messages), 0).as_dict(), True)
    base = str(request.base_url)
    try:
        task_id = await anyio.to_thread.run_sync(_submit, services, user, body, decision)
    except Refusal as refusal:
        if body.stream:
            return _events_response(_one(rid, refusal.content, usage, body.stream_done))
        return answer_body(rid, refusal.content, usage, code=0, msg="OK")
    if body.stream:
        return _events_response(_drawing_events(rid, services, user, task_id, base, usage,
                                                body.stream_done))
    url = await _wait(services, user, task_id, base, None)
    return answer_body(rid, url, usage, task_id=task_id)


def _engine(chat: ChatState, body: FusionRequest) -> tuple[ChatEngine | None,
                                                         RongheError | None]:
    """The chat engine; without a default one, drawing still works (rules decide alone)
    and only a chat answer fails.  A model the client named must exist."""
    if body.model:
        return chat.engines.get(body.model), None
    try:
        return chat.engines.get(None), None
    except RongheError as exc:
        return None, exc


def _check_image_token(services: Services, user: User, token: str) -> None:
    try:
        owner = services.auth.user_for_token(token)
    except Unauthorized as exc:
        raise Unauthorized(f"mh_key: {exc.msg}", field="mh_key") from None
    if owner.id != user.id:
        raise Forbidden("mh_key: the image token belongs to another user than the "
                        "Authorization key", field="mh_key")


def _submit(services: Services, user: User, body: FusionRequest, decision: Decision) -> str:
    submit = body.image_request(decision.prompt).to_request()
    try:
        images.resolve_model(services, user, submit.model_name)
    except BadRequest:
        raise Refusal(f"不支持的模型: {submit.model_name}") from None
    try:
        return images.submit(services, user, submit).id
    except RongheError as exc:
        field = (exc.field or "").split(".")[0].split("[")[0]
        if field and exc.msg.startswith(field):
            exc.msg = body.sent_name(field) + exc.msg[len(field):]
            exc.field = body.sent_name(field) + (exc.field or "")[len(field):]
        raise


async def _prompt_tokens(engine: ChatEngine | None, messages: list[ChatMessage]) -> int:
    if engine is None:
        return 0
    try:
        return await engine.count_tokens(messages) or 0
    except RongheError:
        return 0


def _url(services: Services, task: TaskView, base: str) -> str:
    if task.state is not Status.DONE:
        raise UpstreamError(f"the drawing failed (task {task.id}, {task.state.value}): "
                            f"{task.error_msg or 'no reason given'}")
    urls = image_urls(services, task, base)
    if not urls:
        raise UpstreamError(f"the drawing (task {task.id}) produced no image")
    return urls[0]["large"]


async def _wait(services: Services, user: User, task_id: str, base: str,
                progress: list[float] | None) -> str:
    task = await until_ended(services, user, task_id, WAIT_SECONDS, POLL_SECONDS,
                             None if progress is None else lambda t: progress.append(t.progress))
    if task is None:
        raise Timeout(f"the drawing is still running after {WAIT_SECONDS:g} s; poll "
                      f"task_result with task_id {task_id}")
    return _url(services, task, base)


def _events_response(events: AsyncIterator[str]) -> EventStream:
    return EventStream(events, _Nothing())  # type: ignore[arg-type]


async def _one(rid: str, content: str, usage: dict[str, Any], done: bool) -> AsyncIterator[str]:
    yield sse(chunk(rid, content, {**usage, "completion_tokens": 0, "total_tokens": 0}))
    yield sse(chunk(rid, "", usage, "stop"))
    if done:
        yield DONE


async def _drawing_events(rid: str, services: Services, user: User, task_id: str, base: str,
                          usage: dict[str, Any], done: bool) -> AsyncIterator[str]:
    progress: list[float] = []
    waiting = asyncio.ensure_future(_wait(services, user, task_id, base, progress))
    try:
        yield f": drawing task {task_id}\n\n"
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=HEARTBEAT_SECONDS)
            if not waiting.done():
                yield f": progress {progress[-1] if progress else 0.0:.2f}\n\n"
        url = waiting.result()
        yield sse(chunk(rid, url, {**usage, "completion_tokens": 0, "total_tokens": 0},
                        task_id=task_id))
        yield sse(chunk(rid, "", usage, "stop", task_id=task_id))
    except RongheError as exc:
        yield sse(_stream_error(rid, exc))
    finally:
        waiting.cancel()
    if done:
        yield DONE


def _stream_error(rid: str, exc: RongheError) -> dict[str, Any]:
    return {"code": exc.status_code, "msg": exc.msg,
            "data": {"id": rid, "choices": [], "status": status_of(exc)}}


async def _chat(request: Request, body: FusionRequest, params: GenerationParams,
                chat: ChatState, engine: ChatEngine | None, rid: str,
                fixed: str | None) -> FusionResponse | Response:
    """A normal chat answer, or (``fixed``) the classify-only literal."""
    if fixed is not None:
        usage = usage_body(Usage(await _prompt_tokens(engine, params.messages), 0).as_dict(),
                           False)
        if body.stream:
            return _events_response(_one(rid, fixed, usage, body.stream_done))
        return answer_body(rid, fixed, usage)
    assert engine is not None
    stream = chat.metrics.watch(engine.name, "fusion", await engine.start(params))
    if body.stream:
        return EventStream(_chat_events(rid, stream, body.stream_done), stream)
    result = await collect_or_disconnect(request, stream)
    if result is None:
        return Response(status_code=CLIENT_GONE)
    usage = usage_body(usage_info(result.usage).model_dump(), False)
    return answer_body(rid, result.text, usage)


async def _chat_events(rid: str, stream: ChatStream, done: bool) -> AsyncIterator[str]:
    empty = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "picture": False}
    try:
        async for delta in stream:
            if delta.text:
                yield sse(chunk(rid, delta.text, empty))
            if delta.finish_reason is not None:
                usage = usage_body(usage_info(delta.usage).model_dump(), False)
                yield sse(chunk(rid, "", usage, "stop"))
    except RongheError as exc:
        yield sse(_stream_error(rid, exc))
    except Exception:
        log.exception("fusion chat stream failed")
        yield sse({"code": 500, "msg": "internal error; see the server log",
                   "data": {"id": rid, "choices": [], "status": 1}})
    if done:
        yield DONE
