"""The one place that turns errors into each API family's envelope.

- chat (``/nlp/…``, ``/v1/nlp/…``, ``/test/v1/nlp/…``) and fusion (``/v1/fusion/…``,
  ``/v1/fusion-new/…``, ``/fusion/v1/…``): ``{"code", "msg", "data": null}``
- OpenAI-compatible (``/v1/…``): ``{"error": {"message", "type", "param", "code"}}``
- Miaohua image and training (``/api/v1b/…``): ``{"code", "info": null, "msg"}``
- everything else: ``{"code", "msg"}``

The HTTP status always equals ``code``, so both status-checking and code-checking clients
see the failure.  No handler ever returns a traceback.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ronghe.errors import RongheError

log = structlog.get_logger(__name__)

CHAT_PREFIXES = ("/nlp/", "/v1/nlp/", "/test/v1/nlp/",
                 # fusion (chat that draws) answers in the chat envelope
                 "/v1/fusion/", "/v1/fusion-new/", "/fusion/v1/")


class Family(StrEnum):
    CHAT = "chat"
    OPENAI = "openai"
    MIAOHUA = "miaohua"
    PLAIN = "plain"


def family_of(path: str) -> Family:
    if path.startswith(CHAT_PREFIXES):
        return Family.CHAT
    if path.startswith("/v1/"):
        return Family.OPENAI
    if path.startswith("/api/"):
        return Family.MIAOHUA
    return Family.PLAIN


OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


def error_body(family: Family, status: int, msg: str, field: str | None = None) -> dict[str, Any]:
    if family is Family.CHAT:
        return {"code": status, "msg": msg, "data": None}
    if family is Family.OPENAI:
        return {"error": {"message": msg, "type": OPENAI_TYPES.get(status, "server_error"),
                          "param": field, "code": status}}
    if family is Family.MIAOHUA:
        return {"code": status, "info": None, "msg": msg}
    return {"code": status, "msg": msg}


def error_response(request: Request, status: int, msg: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = error_body(family_of(request.url.path), status, msg, field)
    return JSONResponse(body, status_code=status, headers=headers)


def describe_validation_error(exc: RequestValidationError) -> tuple[str, str | None]:
    """The first problem as 'field: what is wrong (got value)', naming nested fields a.b[0].c."""
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    err = errors[0]
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    kind = err.get("type", "")
    if kind == "json_invalid":
        return "request body is not valid JSON", None
    if kind == "missing":
        return f"{field} is required", field or None
    msg = err.get("msg", "invalid value")
    msg = msg.removeprefix("Value error, ")
    got = err.get("input")
    scalar = isinstance(got, str | int | float | bool) and not isinstance(got, bytes)
    shown = f" (got {json.dumps(got, ensure_ascii=False)[:80]})" if scalar else ""
    if not field:
        return f"{msg}{shown}", None
    return f"{field}: {msg}{shown}", field


def install(app: FastAPI) -> None:
    @app.exception_handler(RongheError)
    async def _ronghe_error(request: Request, exc: RongheError) -> JSONResponse:
        headers = {"Retry-After": "5"} if exc.status_code in (429, 503) else None
        return error_response(request, exc.status_code, exc.msg, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        msg, field = describe_validation_error(exc)
        return error_response(request, 400, msg, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            msg = f"method {request.method} not allowed on {request.url.path}"
        return error_response(request, exc.status_code, msg, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return error_response(request, 500, "internal error; see the server log for details")
