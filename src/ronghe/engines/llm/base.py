"""The chat-engine interface every backend (llama.cpp, an upstream server) implements.

Engines speak plain dataclasses, not HTTP models, so the vendor API and the OpenAI API share
them.  A generation is a two-step affair: ``await engine.start(params)`` admits or rejects it
at once (full queue, prompt too long, upstream refusing), so such errors surface before a
response has begun; the returned ``ChatStream`` is then iterated for text deltas, the last of
which carries ``finish_reason`` and ``usage``.  ``aclose()`` on the stream stops the
generation (a client went away); engines must honour it promptly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


@dataclass(frozen=True)
class ToolCall:
    """A function call the model made: ``arguments`` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    # An assistant turn that called tools, and a tool result's answer to one of those calls.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class Tool:
    """A function the model may call; ``parameters`` is a JSON Schema for its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


# "auto", "none", "required", or the name of the one function that must be called.
ToolChoice = str


@dataclass(frozen=True)
class ResponseFormat:
    """Structured output: any JSON object, or JSON valid for ``schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None


@dataclass(frozen=True)
class GenerationParams:
    messages: list[ChatMessage]
    # 0 means greedy decoding (the OpenAI API allows it; the vendor API does not).
    temperature: float = 0.8
    top_p: float = 0.7
    # None: as many as the model's context leaves room for.
    max_new_tokens: int | None = 2048
    # Hugging Face semantics: applied over prompt and output, 1.0 means off.
    repetition_penalty: float = 1.0
    # OpenAI semantics: over the generated tokens only, 0 means off.
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # token id -> bias added to its logit (OpenAI's logit_bias).
    logit_bias: dict[int, float] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    user: str | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    # A GBNF grammar (llama.cpp's format) the output must match; engines that cannot
    # constrain output ignore it, so callers still check what comes back.
    grammar: str | None = None
    # Log-probabilities of the generated tokens, and of the ``top_logprobs`` likeliest
    # alternatives at each position (OpenAI's logprobs).
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call in a stream: the first piece of call ``index`` has its id and
    name, later ones only more ``arguments`` text (the OpenAI streaming shape)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's bytes and natural-log probability under the model, with the
    likeliest tokens at its position (``top``: bytes and log-probability, likeliest first)."""

    token: bytes
    logprob: float
    top: tuple[tuple[bytes, float], ...] = ()


@dataclass(frozen=True)
class ChatDelta:
    """New text; the final delta of a stream has ``finish_reason`` set (and usage if known).
    ``logprobs`` are those of the tokens this delta's text comes from (when asked for)."""

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: FinishReason
    usage: Usage | None
    tool_calls: tuple[ToolCall, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


class ChatStream(Protocol):
    def __aiter__(self) -> ChatStream: ...

    async def __anext__(self) -> ChatDelta: ...

    async def aclose(self) -> None: ...


class ChatEngine(Protocol):
    name: str

    async def start(self, params: GenerationParams) -> ChatStream: ...

    async def count_tokens(self, messages: list[ChatMessage]) -> int | None:
        """Prompt tokens for these messages, or None where the engine cannot tell."""
        ...

    def context_length(self) -> int: ...

    def describe(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def message_chars(messages: list[ChatMessage]) -> int:
    """Characters of text in ``messages``: contents, and earlier tool calls and their ids."""
    total = 0
    for m in messages:
        total += len(m.content) + len(m.tool_call_id or "")
        for call in m.tool_calls:
            total += len(call.id) + len(call.name) + len(call.arguments)
    return total


def tool_chars(tools: list[Tool]) -> int:
    """Characters the tool definitions add to the prompt (their JSON listing, near enough)."""
    return sum(len(t.name) + len(t.description) + len(json.dumps(t.parameters, ensure_ascii=False))
               for t in tools)


async def collect(stream: ChatStream) -> ChatResult:
    """Drain a stream into one result; closes the stream if the caller is cancelled."""
    parts: list[str] = []
    logprobs: list[TokenLogprob] = []
    calls: dict[int, list[str]] = {}  # index -> [id, name, arguments so far]
    finish: FinishReason = "stop"
    usage: Usage | None = None
    try:
        async for delta in stream:
            parts.append(delta.text)
            logprobs.extend(delta.logprobs)
            for piece in delta.tool_calls:
                call = calls.setdefault(piece.index, ["", "", ""])
                call[0] = piece.id or call[0]
                call[1] = piece.name or call[1]
                call[2] += piece.arguments
            if delta.finish_reason is not None:
                finish = delta.finish_reason
                usage = delta.usage
    finally:
        await stream.aclose()
    tool_calls = tuple(ToolCall(*calls[i]) for i in sorted(calls))
    return ChatResult("".join(parts), finish, usage, tool_calls, tuple(logprobs))
