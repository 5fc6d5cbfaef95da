"""OpenAI chat-completions request and response shapes, as far as Ronghe supports them.

Defaults and ranges are OpenAI's (temperature 1 in [0, 2], top_p 1 in [0, 1], no token limit
but the context); ``repetition_penalty`` is accepted as vLLM does.  Features Ronghe cannot
honour (n > 1, tools, logprobs, JSON mode) are refused with a 400 naming them rather than
silently ignored; unknown fields are ignored.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ronghe.api.chat.protocol import MAX_CONTENT_CHARS, MAX_MESSAGES, drop_nulls, in_range
from ronghe.engines.llm.base import ChatMessage, GenerationParams, Usage


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = Field(max_length=MAX_CONTENT_CHARS)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # "developer" is what newer OpenAI clients call the system message.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(default="")

    @field_validator("content", mode="before")
    @classmethod
    def _null_content(cls, v: Any) -> Any:
        return "" if v is None else v

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


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
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

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
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, v: bool) -> bool:
        if v:
            raise ValueError("logprobs are not supported")
        return v

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list[Any] | None) -> list[Any] | None:
        if v:
            raise ValueError("tools are not supported")
        return v

    @field_validator("response_format")
    @classmethod
    def _response_format(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v and v.get("type", "text") != "text":
            raise ValueError("only the 'text' response format is supported")
        return v

    def to_params(self) -> GenerationParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationParams(
            messages=[ChatMessage("system" if m.role == "developer" else m.role, m.text())
                      for m in self.messages],
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
        )


def now() -> int:
    return int(time.time())


def usage_dict(usage: Usage | None) -> dict[str, int] | None:
    return usage.as_dict() if usage else None


def completion_body(rid: str, model: str, created: int, text: str, finish_reason: str,
                    usage: Usage | None) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage_dict(usage),
    }


def chunk_body(rid: str, model: str, created: int, delta: dict[str, Any],
               finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                     "logprobs": None}],
    }


def usage_chunk_body(rid: str, model: str, created: int, usage: Usage | None) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage_dict(usage)}


def models_body(names: list[str], context: dict[str, int]) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "ronghe",
         "context_length": context[name]} for name in names]}
