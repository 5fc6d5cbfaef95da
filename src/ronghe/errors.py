"""The exceptions services raise.  ``ronghe.api.envelopes`` turns them into each API's envelope.

Services never build HTTP responses; they raise one of these with a message that names the
field and the allowed values, and the envelope layer picks the shape and the status code.
"""

from __future__ import annotations


class RongheError(Exception):
    """Base class: an error the client should see, with its HTTP status."""

    status_code: int = 400

    def __init__(self, msg: str, *, field: str | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.field = field


class BadRequest(RongheError):
    status_code = 400


class UnknownModel(BadRequest):
    """A model name or versionid that names no model the user may use (no base model, none
    of their LoRAs).  Callers that try another kind of model next catch this type."""


class Unauthorized(RongheError):
    status_code = 401


class Forbidden(RongheError):
    status_code = 403


class NotFound(RongheError):
    status_code = 404


class Conflict(RongheError):
    status_code = 409


class PayloadTooLarge(RongheError):
    status_code = 413


class UnsupportedMediaType(RongheError):
    status_code = 415


class RateLimited(RongheError):
    status_code = 429

    def __init__(self, msg: str, *, field: str | None = None,
                 retry_after: float = 5) -> None:
        super().__init__(msg, field=field)
        # Seconds until a retry can succeed: the Retry-After header.
        self.retry_after = max(1, int(retry_after + 0.999))


class UpstreamError(RongheError):
    """An upstream engine (LLM server, object store) failed or answered an error."""

    status_code = 502


class Busy(RongheError):
    """The server is at capacity (a full queue); the client may retry later."""

    status_code = 503


class NotReady(RongheError):
    """A model or engine is still loading or failed to load."""

    status_code = 503


class Timeout(RongheError):
    status_code = 504


class ContentViolation(RongheError):
    status_code = 400


def field_error(field: str, allowed: str, got: object = None) -> BadRequest:
    """A uniform message for a value out of range: ``n_images must be 1-8 (got 9)``."""
    suffix = "" if got is None else f" (got {got!r})"
    return BadRequest(f"{field} must be {allowed}{suffix}", field=field)
