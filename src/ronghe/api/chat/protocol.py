"""Request and response shapes of the vendor chat API (``fusion-api.md`` + field notes).

Out-of-range values fail with a message naming the field and its range; the app's error
handler turns that into ``{"code": 400, "msg": "temperature: must be in (0, 2] (got 3)"}``.
Unknown fields are ignored, and ``null`` means "use the default", as lenient clients send it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ronghe.engines.llm.base import ChatMessage, GenerationParams

MAX_CONTENT_CHARS = 200_000
MAX_MESSAGES = 1_000


def drop_nulls(data: Any) -> Any:
    """``"temperature": null`` means the default, not an error."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


def in_range(value: float, low: float, high: float | None, low_open: bool = True) -> None:
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        left = "(" if low_open else "["
        right = f"{high:g}]" if high is not None else "∞)"
        raise ValueError(f"must be in {left}{low:g}, {right}")


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CONTENT_CHARS)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float = 0.8
    top_p: float = 0.7
    max_new_tokens: int = 2048
    repetition_penalty: float = 1.0
    stream: bool = False
    user: str | int | None = None
    user_id: str | int | None = None
    model: str | None = Field(default=None, max_length=128)

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return drop_nulls(data)

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        in_range(v, 0, 2)
        return v

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float) -> float:
        in_range(v, 0, 1)
        return v

    @field_validator("max_new_tokens")
    @classmethod
    def _max_new_tokens(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("repetition_penalty")
    @classmethod
    def _repetition_penalty(cls, v: float) -> float:
        in_range(v, 0, None)
        return v

    @field_validator("messages")
    @classmethod
    def _last_from_user(cls, v: list[Message]) -> list[Message]:
        if v and v[-1].role != "user":
            raise ValueError(f"the last message must be from the user (got {v[-1].role!r})")
        return v

    def to_params(self) -> GenerationParams:
        user = self.user if self.user is not None else self.user_id
        return GenerationParams(
            messages=[ChatMessage(m.role, m.content) for m in self.messages],
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            repetition_penalty=self.repetition_penalty,
            user=None if user is None else str(user),
        )


# --- responses: plain dicts, built in one place each so both shapes stay in step


def completion_body(rid: str, text: str, finish_reason: str, usage: dict[str, int],
                    status: int = 0) -> dict[str, Any]:
    return {
        "code": 200,
        "msg": "ok",
        "data": {
            "id": rid,
            "choices": [{"index": 0, "message": text, "content": text, "role": "assistant",
                         "finish_reason": finish_reason}],
            "usage": usage,
            "status": status,
        },
    }


def chunk_body(rid: str, delta: str, finish_reason: str | None = None,
               usage: dict[str, int] | None = None, status: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rid,
        "choices": [{"index": 0, "delta": delta, "role": "assistant",
                     "finish_reason": finish_reason}],
        "status": status,
    }
    if usage is not None:
        data["usage"] = usage
    return {"code": 200, "msg": "ok", "data": data}


def stream_error_body(rid: str, code: int, msg: str, status: int) -> dict[str, Any]:
    """An error after the stream began: the HTTP status is already 200, so ``code`` says it."""
    return {"code": code, "msg": msg, "data": {"id": rid, "choices": [], "status": status}}
