"""What the vendor chat API and the OpenAI-compatible API accept alike, validated once.

Both request models derive from ``ChatBody``: unknown fields ignored, ``null`` meaning the
default, NaN/Infinity refused, and the fields whose meaning is the same in both (model,
stream, repetition_penalty) declared here.  Their ranges differ where the two APIs differ
(temperature is ``(0, 2]`` for the vendor, ``[0, 2]`` for OpenAI) and are declared with
``Range`` beside each field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ronghe.api.envelopes import Body
from ronghe.api.fields import AtLeast, Range, drop_nulls
from ronghe.engines.llm.base import GenerationParams, message_chars, tool_chars
from ronghe.errors import BadRequest

MAX_CONTENT_CHARS = 200_000
MAX_MESSAGES = 1_000

# The docs of both chat routes: the statuses they can answer (a bad field, a bad key, a body
# too large, an upstream failing, the model busy or loading, an engine too slow) and the stream.
CHAT_ERRORS = (400, 401, 413, 502, 503, 504)
STREAM: dict[str, Any] = {
    "description": "With `stream: true`: server-sent events, `data: <chunk>` lines ending "
                   "with `data: [DONE]`",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}

# Hugging Face semantics (as vLLM accepts it): over prompt and output, 1.0 means off.
RepetitionPenalty = Annotated[float, Range(0, low_open=True)]
Tokens = Annotated[int, AtLeast(1)]


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str | None = Field(default=None, max_length=128,
                              description="a configured chat model; the first one if absent")
    stream: bool = Field(default=False, description="answer with server-sent events")
    repetition_penalty: RepetitionPenalty = 1.0

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        # ``"temperature": null`` means the default, not an error.
        return drop_nulls(data)


class UsageInfo(Body):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def check_input_size(params: GenerationParams, limit: int) -> None:
    """Refuses a request with more than ``limit`` characters of text in all (the
    ``chat_max_input_chars`` setting), before anything is templated or tokenized.

    Tokenizing costs time in proportion to the text, and far more text than any context
    holds is only ever refused once tokenized; so the size is checked first, in O(messages).
    """
    in_messages = message_chars(params.messages)
    total = in_messages + tool_chars(params.tools)
    if total <= limit:
        return
    # Name what pushed it over: the messages, or the tool definitions added to them.
    field = "messages" if in_messages > limit else "tools"
    raise BadRequest(
        f"{field}: the request has {total} characters of text (messages, tool calls and "
        f"tool definitions together); the limit is {limit} characters per request "
        "(chat_max_input_chars)", field=field)
