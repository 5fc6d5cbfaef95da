"""Chat through any OpenAI-compatible server (vLLM, llama.cpp's server, another Ronghe).

Every request goes upstream as a stream, so tokens pass through as they arrive and a client
that goes away closes the upstream connection (vLLM and llama.cpp abort the generation when
that happens).  Upstream failures become Ronghe errors whose message says which model and
server failed and what the server said; they never leak as 500s with a traceback.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx

from ronghe.engines.llm.base import (
    ChatDelta,
    ChatMessage,
    FinishReason,
    GenerationParams,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from ronghe.errors import BadRequest, Busy, RongheError, Timeout, UpstreamError

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length",
                                    "content_filter": "content_filter",
                                    "tool_calls": "tool_calls"}


class UpstreamEngine:
    def __init__(self, name: str, base_url: str, *, api_key: str | None = None,
                 model: str | None = None, n_ctx: int = 8192,
                 timeout_seconds: float = 300) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.model = model or name
        self._api_key = api_key
        self._n_ctx = n_ctx
        self._timeout = httpx.Timeout(timeout_seconds, connect=10.0)
        self._client: httpx.AsyncClient | None = None

    def context_length(self) -> int:
        return self._n_ctx

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "engine": "upstream", "base_url": self.base_url,
                "upstream_model": self.model, "context": self._n_ctx}

    async def count_tokens(self, messages: list[ChatMessage]) -> None:
        return None  # the OpenAI API has no tokenizer endpoint

    async def start(self, params: GenerationParams) -> _UpstreamStream:
        client = self._http()
        request = client.build_request("POST", f"{self.base_url}/chat/completions",
                                       json=self._payload(params))
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise Timeout(f"{self.who()} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.who()} is unreachable: {_describe(exc)}") from exc
        if response.status_code >= 400:
            body = await response.aread()
            await response.aclose()
            raise self.error_for(response.status_code, _upstream_message(body))
        return _UpstreamStream(self, response)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- helpers

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(timeout=self._timeout, headers=headers)
        return self._client

    def _payload(self, p: GenerationParams) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [_message(m) for m in p.messages],
            "temperature": p.temperature,
            "top_p": p.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if p.max_new_tokens is not None:
            payload["max_tokens"] = p.max_new_tokens
        if p.stop:
            payload["stop"] = p.stop
        if p.frequency_penalty:
            payload["frequency_penalty"] = p.frequency_penalty
        if p.presence_penalty:
            payload["presence_penalty"] = p.presence_penalty
        if p.logit_bias:
            payload["logit_bias"] = {str(k): v for k, v in p.logit_bias.items()}
        if p.seed is not None:
            payload["seed"] = p.seed
        if p.user:
            payload["user"] = p.user
        if p.logprobs:
            payload["logprobs"] = True
            if p.top_logprobs:
                payload["top_logprobs"] = p.top_logprobs
        if p.response_format is not None and p.response_format.type != "text":
            fmt: dict[str, Any] = {"type": p.response_format.type}
            if p.response_format.type == "json_schema":
                fmt["json_schema"] = {"name": p.response_format.name or "response",
                                      "schema": p.response_format.schema or {}}
            payload["response_format"] = fmt
        if p.tools:
            payload["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in p.tools]
            choice = p.tool_choice
            payload["tool_choice"] = choice if choice in ("auto", "none", "required") else {
                "type": "function", "function": {"name": choice}}
            if not p.parallel_tool_calls:
                payload["parallel_tool_calls"] = False
        if p.repetition_penalty != 1.0:
            # vLLM's (and Ronghe's) extension, with Hugging Face semantics; sent only when
            # used, as OpenAI itself rejects unknown fields.
            payload["repetition_penalty"] = p.repetition_penalty
        return payload

    def who(self) -> str:
        return f"upstream chat model {self.name!r} at {self.base_url}"

    def error_for(self, status: int, said: str) -> RongheError:
        """The Ronghe error for an upstream HTTP status and the message upstream gave."""
        if status == 400 or status == 422:
            return BadRequest(f"{self.who()} rejected the request: {said}")
        if status in (401, 403):
            return UpstreamError(f"{self.who()} refused Ronghe's API key "
                                 f"(HTTP {status}): {said}; check the model's api_key setting")
        if status == 404:
            return UpstreamError(f"{self.who()} has no such model or endpoint "
                                 f"(HTTP 404): {said}; check base_url and upstream_model")
        if status in (429, 503):
            return Busy(f"{self.who()} is busy (HTTP {status}): {said}")
        if status == 504:
            return Timeout(f"{self.who()} timed out (HTTP 504): {said}")
        return UpstreamError(f"{self.who()} failed (HTTP {status}): {said}")


class _UpstreamStream:
    def __init__(self, engine: UpstreamEngine, response: httpx.Response) -> None:
        self._engine = engine
        self._response = response
        self._lines = response.aiter_lines()
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._done = False
        self._final_sent = False

    def __aiter__(self) -> _UpstreamStream:
        return self

    async def __anext__(self) -> ChatDelta:
        if self._final_sent:
            raise StopAsyncIteration
        while not self._done:
            event = await self._next_event()
            if event is None:
                break
            delta = self._delta(event)
            if delta is not None:
                return delta
        # The finish reason and the usage arrive in separate events; report them together.
        self._final_sent = True
        await self.aclose()
        return ChatDelta("", finish_reason=self._finish or "stop", usage=self._usage)

    async def aclose(self) -> None:
        self._done = True
        await self._response.aclose()

    async def _next_event(self) -> dict[str, Any] | None:
        who = self._engine.who()
        try:
            async for line in self._lines:
                if not line.startswith("data:"):
                    continue  # SSE comments, event names and blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    return None
                try:
                    event = json.loads(data)
                except ValueError as exc:
                    raise UpstreamError(f"{who} sent a malformed event: {data[:200]}") from exc
                if isinstance(event, dict) and "error" in event:
                    # The HTTP status was 200 when the stream began; the event says what
                    # went wrong (OpenAI and vLLM put the status in error.code).
                    error = event["error"]
                    code = error.get("code") if isinstance(error, dict) else None
                    said = _upstream_message(data.encode())
                    raise self._engine.error_for(code if isinstance(code, int) else 502,
                                                 f"mid-stream: {said}")
                return event if isinstance(event, dict) else {}
        except httpx.TimeoutException as exc:
            raise Timeout(f"{who} stopped sending tokens") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{who} broke off the stream: {_describe(exc)}") from exc
        return None

    def _delta(self, event: dict[str, Any]) -> ChatDelta | None:
        usage = event.get("usage")
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            self._usage = Usage(int(usage["prompt_tokens"]),
                                int(usage.get("completion_tokens") or 0))
        choices = event.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        reason = choice.get("finish_reason")
        if reason:
            self._finish = _FINISH.get(reason, "stop")
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        pieces = tuple(_tool_piece(c) for c in delta.get("tool_calls") or []
                       if isinstance(c, dict))
        logprobs = _logprobs(choice.get("logprobs"))
        if text or pieces or logprobs:
            return ChatDelta(text, tool_calls=pieces, logprobs=logprobs)
        return None


def _message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}}
                             for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def _logprobs(found: Any) -> tuple[TokenLogprob, ...]:
    """An upstream chunk's ``logprobs.content``, OpenAI's shape, as the engines speak it."""
    content = found.get("content") if isinstance(found, dict) else None
    if not isinstance(content, list):
        return ()

    def token(entry: dict[str, Any]) -> tuple[bytes, float]:
        data = str(entry.get("token", "")).encode()
        raw = entry.get("bytes")
        if isinstance(raw, list):
            # Not bytes after all (values over 255): the token's text stands.
            with contextlib.suppress(TypeError, ValueError):
                data = bytes(raw)
        try:
            logprob = float(entry.get("logprob") or 0.0)
        except (TypeError, ValueError):
            logprob = 0.0
        return data, logprob

    out = []
    for entry in content:
        if isinstance(entry, dict):
            top = tuple(token(t) for t in entry.get("top_logprobs") or [] if isinstance(t, dict))
            out.append(TokenLogprob(*token(entry), top))
    return tuple(out)


def _tool_piece(call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function") or {}
    return ToolCallDelta(int(call.get("index") or 0), str(function.get("arguments") or ""),
                         id=call.get("id"), name=function.get("name"))


def _upstream_message(body: bytes) -> str:
    """The message an OpenAI-style (or vendor-style) error body carries, else the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300] or "no details"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        for key in ("msg", "message", "detail"):
            if data.get(key):
                return str(data[key])[:300]
    return text[:300]


def _describe(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__
