"""OpenAI chat-completions request and response shapes, as far as Ronghe supports them.

Defaults and ranges are OpenAI's (temperature 1 in [0, 2], top_p 1 in [0, 1], no token limit
but the context); ``repetition_penalty`` is accepted as vLLM does.  ``tools``,
``tool_choice``, ``response_format`` (JSON mode and JSON Schema) and ``n`` up to ``MAX_N`` are
supported; ``logprobs`` is refused with a 400 naming it rather than silently ignored; unknown
fields are ignored.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ronghe.api.chat.protocol import MAX_CONTENT_CHARS, MAX_MESSAGES, drop_nulls, in_range
from ronghe.engines.llm.base import (
    ChatMessage,
    ChatResult,
    GenerationParams,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

MAX_TOOLS = 128  # OpenAI's limit
MAX_N = 8
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = Field(max_length=MAX_CONTENT_CHARS)


class ToolCallFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=64)
    arguments: str = Field(default="", max_length=MAX_CONTENT_CHARS)


class ToolCallIn(BaseModel):
    """A call the assistant made earlier in the conversation, sent back by the client."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(default="", max_length=128)
    type: Literal["function"] = "function"
    function: ToolCallFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # "developer" is what newer OpenAI clients call the system message.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] = Field(default="")
    tool_calls: list[ToolCallIn] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_call_id: str | None = Field(default=None, max_length=128)

    @field_validator("content", mode="before")
    @classmethod
    def _null_content(cls, v: Any) -> Any:
        return "" if v is None else v

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def to_message(self) -> ChatMessage:
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments)
                      for c in self.tool_calls or [])
        role = "system" if self.role == "developer" else self.role
        return ChatMessage(role, self.text(), tool_calls=calls, tool_call_id=self.tool_call_id)


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=10_000)
    parameters: dict[str, Any] = Field(default_factory=dict)
    strict: bool | None = None


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str = Field(max_length=64)


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(default="response", pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=10_000)
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormatIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormatIn:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type 'json_schema' needs a 'json_schema' object with a 'schema'")
        return self

    def to_format(self) -> ResponseFormat:
        spec = self.json_schema
        return ResponseFormat(self.type, spec.json_schema if spec else None,
                              spec.name if spec else None)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, max_length=128)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[int, float] | None = None
    repetition_penalty: float = 1.0
    user: str | None = None
    logprobs: bool = False
    tools: list[ToolDef] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormatIn | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return drop_nulls(data)

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        in_range(v, 0, 2, low_open=False)
        return v

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float) -> float:
        in_range(v, 0, 1, low_open=False)
        return v

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _max_tokens(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _penalty(cls, v: float) -> float:
        in_range(v, -2, 2, low_open=False)
        return v

    @field_validator("repetition_penalty")
    @classmethod
    def _repetition_penalty(cls, v: float) -> float:
        in_range(v, 0, None)
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, v: dict[int, float] | None) -> dict[int, float] | None:
        for bias in (v or {}).values():
            in_range(bias, -100, 100, low_open=False)
        return v

    @field_validator("n")
    @classmethod
    def _n(cls, v: int) -> int:
        if not 1 <= v <= MAX_N:
            raise ValueError(f"must be in [1, {MAX_N}]")
        return v

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, v: bool) -> bool:
        if v:
            raise ValueError("logprobs are not supported")
        return v

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list[ToolDef] | None) -> list[ToolDef] | None:
        names = [t.function.name for t in v or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"function names must be unique (twice: {', '.join(twice)})")
        return v

    @model_validator(mode="after")
    def _tool_choice(self) -> ChatCompletionRequest:
        choice = self.tool_choice
        names = [t.function.name for t in self.tools or []]
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice: no function {choice.function.name!r} in tools "
                             f"(given: {', '.join(names) or 'none'})")
        if choice == "required" and not names:
            raise ValueError("tool_choice: 'required' needs at least one function in tools")
        return self

    def choice(self) -> str:
        if isinstance(self.tool_choice, NamedToolChoice):
            return self.tool_choice.function.name
        return self.tool_choice or "auto"

    def to_params(self) -> GenerationParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationParams(
            messages=[m.to_message() for m in self.messages],
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_completion_tokens or self.max_tokens,
            repetition_penalty=self.repetition_penalty,
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
            logit_bias=dict(self.logit_bias or {}),
            stop=stops,
            seed=self.seed,
            user=self.user,
            response_format=self.response_format.to_format() if self.response_format else None,
            tools=[Tool(t.function.name, t.function.description, t.function.parameters)
                   for t in self.tools or []],
            tool_choice=self.choice(),
            parallel_tool_calls=self.parallel_tool_calls,
        )


def now() -> int:
    return int(time.time())


def usage_dict(usage: Usage | None) -> dict[str, int] | None:
    return usage.as_dict() if usage else None


def completion_body(rid: str, model: str, created: int, text: str, finish_reason: str,
                    usage: Usage | None, tool_calls: tuple[ToolCall, ...] = (),
                    more: list[ChatResult] | None = None) -> dict[str, Any]:
    """The whole answer; ``more`` are choices 1… when the request asked for n > 1."""
    choices = [choice_body(0, text, finish_reason, tool_calls)]
    choices += [choice_body(i, r.text, r.finish_reason, r.tool_calls)
                for i, r in enumerate(more or [], 1)]
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_dict(usage),
    }


def choice_body(index: int, text: str, finish_reason: str,
                tool_calls: tuple[ToolCall, ...] = ()) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        # OpenAI sends null content beside tool calls when the model wrote no text.
        message["content"] = text or None
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in tool_calls]
    return {"index": index, "message": message, "finish_reason": finish_reason,
            "logprobs": None}


def chunk_body(rid: str, model: str, created: int, delta: dict[str, Any],
               finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason,
                     "logprobs": None}],
    }


def tool_call_delta(piece: ToolCallDelta) -> dict[str, Any]:
    """A streamed piece of a call: the first has id, type and name (OpenAI's shape)."""
    function: dict[str, Any] = {"arguments": piece.arguments}
    out: dict[str, Any] = {"index": piece.index, "function": function}
    if piece.id is not None:
        out["id"], out["type"] = piece.id, "function"
        function["name"] = piece.name
    return out


def usage_chunk_body(rid: str, model: str, created: int, usage: Usage | None) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage_dict(usage)}


def models_body(names: list[str], context: dict[str, int]) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "ronghe",
         "context_length": context[name]} for name in names]}
