"""Request and response shapes of the vendor chat API (``fusion-api.md`` + field notes).

Out-of-range values fail with a message naming the field and its range; the app's error
handler turns that into ``{"code": 400, "msg": "temperature: must be in (0, 2] (got 3)"}``.
Unknown fields are ignored, and ``null`` means "use the default", as lenient clients send it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ronghe.api.chat.params import MAX_CONTENT_CHARS, MAX_MESSAGES, ChatBody, Tokens, UsageInfo
from ronghe.api.envelopes import Body, ChatOk
from ronghe.api.fields import Range
from ronghe.engines.llm.base import ChatMessage, FinishReason, GenerationParams, Usage


class VendorMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CONTENT_CHARS)


class VendorChatRequest(ChatBody):
    messages: list[VendorMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: Annotated[float, Range(0, 2, low_open=True)] = 0.8
    top_p: Annotated[float, Range(0, 1, low_open=True)] = 0.7
    max_new_tokens: Tokens = 2048
    user: str | int | None = None
    user_id: str | int | None = None

    @field_validator("messages")
    @classmethod
    def _last_from_user(cls, v: list[VendorMessage]) -> list[VendorMessage]:
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


# --- responses


def usage_info(usage: Usage | None) -> UsageInfo:
    # Upstreams that report no usage get zeros: clients unmarshal these fields unconditionally.
    return UsageInfo(**(usage or Usage(0, 0)).as_dict())


class VendorChoice(Body):
    index: int = 0
    message: str = Field(description="the answer (as the vendor sends it)")
    content: str = Field(description="the answer again, for clients that read this name")
    role: Literal["assistant"] = "assistant"
    finish_reason: FinishReason


class VendorCompletion(Body):
    id: str
    choices: list[VendorChoice]
    usage: UsageInfo
    status: int = Field(description="0 ok, 1 internal error, 3 timeout, 4 content violation")


CompletionResponse = ChatOk[VendorCompletion]


def completion(rid: str, text: str, finish_reason: FinishReason, usage: Usage | None,
               status: int = 0) -> CompletionResponse:
    choice = VendorChoice(message=text, content=text, finish_reason=finish_reason)
    data = VendorCompletion(id=rid, choices=[choice], usage=usage_info(usage), status=status)
    return CompletionResponse(data=data)


# Stream events: plain dicts, one per token, built here so both shapes stay in step.


def chunk_body(rid: str, delta: str, finish_reason: str | None = None,
               usage: Usage | None = None, status: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rid,
        "choices": [{"index": 0, "delta": delta, "role": "assistant",
                     "finish_reason": finish_reason}],
        "status": status,
    }
    if finish_reason is not None:
        data["usage"] = usage_info(usage).model_dump()
    return {"code": 200, "msg": "ok", "data": data}


def stream_error_body(rid: str, code: int, msg: str, status: int) -> dict[str, Any]:
    """An error after the stream began: the HTTP status is already 200, so ``code`` says it."""
    return {"code": code, "msg": msg, "data": {"id": rid, "choices": [], "status": status}}
