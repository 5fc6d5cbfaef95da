"""The ``Idempotency-Key`` header for submit-like routes (see ronghe.idempotency)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, Response
from pydantic import BaseModel

from ronghe.db.models import User
from ronghe.idempotency.service import HEADER, MAX_KEY_CHARS, REPLAYED_HEADER
from ronghe.services import Services

IdempotencyKeyHeader = Annotated[str | None, Header(
    alias=HEADER, max_length=MAX_KEY_CHARS * 4,
    description="Retry-safe submits: the same key with the same body within 24 h returns "
    "the first answer; with a different body, HTTP 409")]


def content_of(body: Any) -> Any:
    """What "the same body" means: the parsed fields, defaults filled in, token left out
    (a client may log in again between two tries)."""
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude={"token"})
    return body


def idempotent(services: Services, user: User, key: str | None, endpoint: str, body: Any,
               response: Response, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    answer, replayed = services.idempotency.run(user.id, key, endpoint, content_of(body), work)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return answer
