"""Exceptions of ``ronghe.client``: every failure a server reports, with its ``code`` and ``msg``.

The class follows the HTTP status (Ronghe's status always equals the envelope ``code``).  A
vendor-style server that answers HTTP 200 with an error ``code`` in the body is mapped by the
later editions' codes (101/102 login, 106-108 task not found, 411-413 token, 429 too frequent).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any


class APIError(Exception):
    """A request the server refused or could not answer.

    ``status`` is the HTTP status (0 when no answer came), ``code`` the envelope's code and
    ``msg`` the server's message, unchanged.
    """

    def __init__(self, msg: str, *, code: int = 0, status: int = 0, body: Any = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"{self.msg} (code {self.code})" if self.code else self.msg


class ValidationError(APIError):
    """A value the server (or the client, before sending) does not accept: 400."""


class AuthError(APIError):
    """Missing, wrong, expired or revoked credentials (401), or not allowed (403)."""


class NotFoundError(APIError):
    """No such task, dataset, model or endpoint, or one that belongs to another user: 404."""


class ConflictError(APIError):
    """The name is taken (409)."""


class BusyError(APIError):
    """The server is at capacity (503); retrying later may work.

    ``retry_after`` is the server's ``Retry-After`` in seconds, or ``None``.  The client has
    already retried ``max_retries`` times with backoff when this reaches you.
    """

    def __init__(self, msg: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self.retry_after = retry_after


class RateLimitedError(BusyError):
    """Too many requests (429)."""


class ServerError(APIError):
    """The server failed (500, 502 upstream error, 504 timeout)."""


class ConnectionFailed(APIError):
    """No answer: the server is unreachable, or the connection broke or timed out."""


class TaskFailed(APIError):
    """A task the client waited for ended ``failed`` or ``cancelled``; ``task`` is its last
    state (a TaskResult or TrainProgress)."""

    def __init__(self, msg: str, *, task: Any, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self.task = task


class WaitTimeout(APIError, TimeoutError):
    """A task did not finish within the ``timeout`` given to a waiting call."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError, 401: AuthError, 403: AuthError, 404: NotFoundError,
    409: ConflictError, 413: ValidationError, 422: ValidationError, 429: RateLimitedError,
    503: BusyError,
}
# Codes a vendor-style server puts in an HTTP 200 body (later editions of the document).
_BY_VENDOR_CODE: dict[int, type[APIError]] = {
    101: AuthError, 102: AuthError, 106: NotFoundError, 107: NotFoundError,
    108: NotFoundError, 129: ValidationError, 401: AuthError, 403: ValidationError,
    411: AuthError, 412: AuthError, 413: AuthError, 416: AuthError, 429: RateLimitedError,
    600: AuthError, 603: BusyError,
}


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for(status: int, code: int, msg: str, body: Any = None,
              retry_after: float | None = None) -> APIError:
    if status >= 400:
        cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    else:
        cls = _BY_VENDOR_CODE.get(code, APIError)
    if issubclass(cls, BusyError):
        return cls(msg, code=code, status=status, body=body, retry_after=retry_after)
    return cls(msg, code=code, status=status, body=body)
