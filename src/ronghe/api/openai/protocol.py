"""OpenAI chat-completions request and response shapes, as far as Ronghe supports them.

Defaults and ranges are OpenAI's (temperature 1 in [0, 2], top_p 1 in [0, 1], no token limit
but the context); ``repetition_penalty`` is accepted as vLLM does.  Features Ronghe cannot
honour (n > 1, tools, logprobs, JSON mode) are refused with a 400 naming them rather than
silently ignored; unknown fields are ignored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ronghe.api.chat.params import MAX_CONTENT_CHARS, MAX_MESSAGES, ChatBody, Tokens, UsageInfo
from ronghe.api.envelopes import Body
from ronghe.api.fields import Range
from ronghe.engines.llm.base import ChatMessage, FinishReason, GenerationParams, Usage

Penalty = Annotated[float, Range(-2, 2)]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = Field(max_length=MAX_CONTENT_CHARS)


class OpenAIMessage(BaseModel):
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


class ChatCompletionRequest(ChatBody):
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: Annotated[float, Range(0, 2)] = 1.0
    top_p: Annotated[float, Range(0, 1)] = 1.0
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(default=None, json_schema_extra={"maxItems": 4})
    seed: int | None = None
    n: int = Field(default=1, json_schema_extra={"minimum": 1, "maximum": 1},
                   description="only 1 is supported")
    frequency_penalty: Penalty = 0.0
    presence_penalty: Penalty = 0.0
    logit_bias: dict[int, Annotated[float, Range(-100, 100)]] | None = None
    user: str | None = None
    logprobs: bool = False
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
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


def usage_info(usage: Usage | None) -> UsageInfo | None:
    return UsageInfo(**usage.as_dict()) if usage else None


class AssistantMessage(Body):
    role: Literal["assistant"] = "assistant"
    content: str


class OpenAIChoice(Body):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(Body):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix time")
    model: str
    choices: list[OpenAIChoice]
    usage: UsageInfo | None


def completion(rid: str, model: str, created: int, text: str, finish_reason: FinishReason,
               usage: Usage | None) -> ChatCompletion:
    choice = OpenAIChoice(message=AssistantMessage(content=text), finish_reason=finish_reason)
    return ChatCompletion(id=rid, created=created, model=model, choices=[choice],
                          usage=usage_info(usage))


# Stream events: plain dicts, one per token.


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
