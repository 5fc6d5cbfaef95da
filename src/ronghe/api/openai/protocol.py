"""OpenAI chat-completions request and response shapes, as far as Ronghe supports them.

Defaults and ranges are OpenAI's (temperature 1 in [0, 2], top_p 1 in [0, 1], no token limit
but the context); ``repetition_penalty`` is accepted as vLLM does.  ``tools``,
``tool_choice``, ``response_format`` (JSON mode and JSON Schema), ``n`` up to ``MAX_N`` and
``logprobs`` with ``top_logprobs`` up to 20 are supported; unknown fields are ignored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ronghe.api.chat.params import MAX_CONTENT_CHARS, MAX_MESSAGES, ChatBody, Tokens, UsageInfo
from ronghe.api.envelopes import Body, Sparse
from ronghe.api.fields import Range
from ronghe.engines.llm.base import (
    ChatMessage,
    ChatResult,
    FinishReason,
    GenerationParams,
    ResponseFormat,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ronghe.engines.llm.logprobs import MAX_TOP

MAX_TOOLS = 128  # OpenAI's limit
MAX_N = 8
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
Penalty = Annotated[float, Range(-2, 2)]


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


class OpenAIMessage(BaseModel):
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


class ChatCompletionRequest(ChatBody):
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: Annotated[float, Range(0, 2)] = 1.0
    top_p: Annotated[float, Range(0, 1)] = 1.0
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(default=None, json_schema_extra={"maxItems": 4})
    seed: int | None = None
    n: Annotated[int, Range(1, MAX_N)] = 1
    frequency_penalty: Penalty = 0.0
    presence_penalty: Penalty = 0.0
    logit_bias: dict[int, Annotated[float, Range(-100, 100)]] | None = None
    user: str | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Range(0, MAX_TOP)] | None = None
    tools: list[ToolDef] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormatIn | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and not info.data.get("logprobs"):
            raise ValueError("needs logprobs: true")
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
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs or 0,
        )


def now() -> int:
    return int(time.time())


def usage_info(usage: Usage | None) -> UsageInfo | None:
    return UsageInfo(**usage.as_dict()) if usage else None


class ToolCallFunctionOut(Body):
    name: str
    arguments: str = Field(description="the call's arguments as a JSON text")


class ToolCallOut(Body):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunctionOut


class AssistantMessage(Sparse):
    role: Literal["assistant"] = "assistant"
    # OpenAI sends null content beside tool calls when the model wrote no text.
    content: str | None
    tool_calls: list[ToolCallOut] | None = None


class TopLogprob(Body):
    token: str = Field(description="the token's text; `bytes:\\x..` when its bytes are not "
                                   "whole UTF-8 characters")
    logprob: float = Field(description="natural log of its probability under the model, <= 0")
    bytes: list[int] = Field(description="the token's UTF-8 bytes")


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(description="the likeliest tokens at this "
                                                       "position, likeliest first")


class ChoiceLogprobs(Body):
    content: list[TokenLogprobOut] | None
    refusal: None = None


def logprobs_out(entries: tuple[TokenLogprob, ...]) -> ChoiceLogprobs:
    return ChoiceLogprobs(content=[TokenLogprobOut(
        **_token(e.token, e.logprob), top_logprobs=[TopLogprob(**_token(t, lp)) for t, lp in e.top])
        for e in entries])


def _token(data: bytes, logprob: float) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # a piece of a character: OpenAI's notation
        text = "bytes:" + "".join(f"\\x{b:02x}" for b in data)
    return {"token": text, "logprob": logprob, "bytes": list(data)}


class OpenAIChoice(Body):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(Body):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix time")
    model: str
    choices: list[OpenAIChoice]
    usage: UsageInfo | None


def _choice(index: int, result: ChatResult, logprobs: bool) -> OpenAIChoice:
    lp = logprobs_out(result.logprobs) if logprobs else None
    if not result.tool_calls:
        return OpenAIChoice(index=index, message=AssistantMessage(content=result.text),
                            finish_reason=result.finish_reason, logprobs=lp)
    calls = [ToolCallOut(id=c.id, function=ToolCallFunctionOut(name=c.name,
                                                                arguments=c.arguments))
             for c in result.tool_calls]
    message = AssistantMessage(content=result.text or None, tool_calls=calls)
    return OpenAIChoice(index=index, message=message, finish_reason=result.finish_reason,
                        logprobs=lp)


def completion(rid: str, model: str, created: int, results: list[ChatResult],
               usage: Usage | None, logprobs: bool = False) -> ChatCompletion:
    """The whole answer: one choice per result (n > 1 gives several)."""
    return ChatCompletion(id=rid, created=created, model=model,
                          choices=[_choice(i, r, logprobs) for i, r in enumerate(results)],
                          usage=usage_info(usage))


# Stream events: plain dicts, one per token.


def chunk_body(rid: str, model: str, created: int, delta: dict[str, Any],
               finish_reason: str | None = None, index: int = 0,
               logprobs: tuple[TokenLogprob, ...] = ()) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason,
                     "logprobs": logprobs_out(logprobs).model_dump() if logprobs else None}],
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
    info = usage_info(usage)
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": info.model_dump() if info else None}


class ModelCard(Body):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "ronghe"
    context_length: int = Field(description="the model's context window, in tokens")


class ModelList(Body):
    object: Literal["list"] = "list"
    data: list[ModelCard]
