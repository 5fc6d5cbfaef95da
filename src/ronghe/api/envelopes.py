"""Each API family's envelopes, success and error, and how the OpenAPI document shows them.

Errors:

- chat (``/nlp/…``, ``/v1/nlp/…``, ``/test/v1/nlp/…``) and fusion (``/v1/fusion/…``,
  ``/v1/fusion-new/…``, ``/fusion/v1/…``): ``{"code", "msg", "data": null}``
- OpenAI-compatible (``/v1/…``): ``{"error": {"message", "type", "param", "code"}}``
- Miaohua image and training (``/api/v1b/…``): ``{"code", "info": null, "msg"}``
- AUTOMATIC1111-compatible (``/sdapi/…``): A1111's ``{"error", "detail", "body", "errors"}``
  (``error`` the kind, ``detail`` and ``errors`` the message), with ``code`` and ``param``
- everything else: ``{"code", "msg"}``

The HTTP status always equals ``code``, so both status-checking and code-checking clients
see the failure.  No handler ever returns a traceback.

Success: Miaohua ``{"code": 0, "info", "msg"}`` (``miaohua_ok``), chat ``{"code": 200,
"msg": "ok", "data"}`` (``chat_ok``); OpenAI answers are the bare objects.  Routes return
these pydantic models, so ``/openapi.json`` documents every field, and each route lists the
error statuses it can send (``errors``) with its family's error schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ronghe import text
from ronghe.db.base import MAX_ID
from ronghe.errors import RongheError

CHAT_PREFIXES = ("/nlp/", "/v1/nlp/", "/test/v1/nlp/",
                 # fusion (chat that draws) answers in the chat envelope
                 "/v1/fusion/", "/v1/fusion-new/", "/fusion/v1/")


class Family(StrEnum):
    CHAT = "chat"
    OPENAI = "openai"
    MIAOHUA = "miaohua"
    SDAPI = "sdapi"
    PLAIN = "plain"


def family_of(path: str) -> Family:
    if path.startswith(CHAT_PREFIXES):
        return Family.CHAT
    if path.startswith("/v1/"):
        return Family.OPENAI
    if path.startswith("/api/"):
        return Family.MIAOHUA
    if path.startswith("/sdapi/"):
        return Family.SDAPI
    return Family.PLAIN


# A1111 names the exception in ``error``; these are the kinds its API raises.
SDAPI_KINDS = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound",
               413: "PayloadTooLarge", 429: "TooManyRequests"}
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


def error_body(family: Family, status: int, msg: str, field: str | None = None) -> dict[str, Any]:
    # A message may quote the client's input; what cannot be encoded must not turn the
    # error into a 500 (inputs are checked at the door, this is the second line).
    msg = text.scrub(msg)
    field = text.scrub(field) if field is not None else None
    if family is Family.CHAT:
        return {"code": status, "msg": msg, "data": None}
    if family is Family.OPENAI:
        return {"error": {"message": msg, "type": OPENAI_TYPES.get(status, "server_error"),
                          "param": field, "code": status}}
    if family is Family.MIAOHUA:
        return {"code": status, "info": None, "msg": msg}
    if family is Family.SDAPI:
        return {"error": SDAPI_KINDS.get(status, "HTTPException"), "detail": msg, "body": "",
                "errors": msg, "code": status, "param": field}
    return {"code": status, "msg": msg}


# --- response models


class Body(BaseModel):
    """Base of every response model: every field is always sent, so the schema requires it."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Sparse(BaseModel):
    """A response whose optional fields are left out when not given, rather than sent as null.

    For answers that have always omitted keys (a form field has ``min`` only when it has a
    range): a field that was passed, even as None, is sent; one left at its default None is not.
    """

    @model_serializer(mode="wrap")
    def _omit_unset_nulls(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation: with one, the schema would describe the return type, not us.
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in self.model_fields_set}


T = TypeVar("T")


class MiaohuaOk(Body, Generic[T]):
    """Miaohua and training success envelope."""

    code: int = Field(default=0, description="0 on success")
    info: T
    msg: str = ""


class MiaohuaFlat(Body):
    """Base of the answers that the vendor sends flat (train_progress, dataset_all)."""

    code: int = Field(default=0, description="0 on success")
    msg: str = ""


class ChatOk(Body, Generic[T]):
    """Vendor chat success envelope."""

    code: int = Field(default=200, description="200 on success")
    msg: str = "ok"
    data: T


def miaohua_ok(info: T, msg: str = "") -> MiaohuaOk[T]:
    return MiaohuaOk[T](info=info, msg=msg)


def chat_ok(data: T, code: int = 200, msg: str = "ok") -> ChatOk[T]:
    """``code``/``msg``: the later editions' ``0``/``"OK"`` for an answer that is a refusal."""
    return ChatOk[T](code=code, msg=msg, data=data)


class PlainError(Body):
    code: int = Field(description="the HTTP status")
    msg: str


class MiaohuaError(Body):
    code: int = Field(description="the HTTP status")
    info: None = None
    msg: str = Field(description="what is wrong, naming the field and its allowed range")


class ChatError(Body):
    code: int = Field(description="the HTTP status")
    msg: str = Field(description="what is wrong, naming the field and its allowed range")
    data: None = None


class SdapiError(Body):
    error: str = Field(description="the kind of error (BadRequest, Unauthorized …)")
    detail: str = Field(description="what is wrong, naming the field and its allowed range")
    body: str = ""
    errors: str = Field(description="the same message (A1111's field for it)")
    code: int = Field(description="the HTTP status")
    param: str | None = Field(description="the offending field, when there is one")


class OpenAIErrorDetail(Body):
    message: str
    type: str
    param: str | None = Field(description="the offending field, when there is one")
    code: int = Field(description="the HTTP status")


class OpenAIError(Body):
    error: OpenAIErrorDetail


ERROR_MODELS: dict[Family, type[BaseModel]] = {
    Family.CHAT: ChatError, Family.OPENAI: OpenAIError,
    Family.MIAOHUA: MiaohuaError, Family.SDAPI: SdapiError, Family.PLAIN: PlainError,
}
ERROR_DESCRIPTIONS = {
    400: "Bad request: a field is missing, malformed or out of range (the message names it)",
    401: "Missing, invalid or expired token / API key",
    403: "Not allowed (a file URL whose signature is wrong or expired)",
    404: "No such object of yours",
    409: "Conflicts with an existing object (a name already taken)",
    413: "Request body or uploaded file too large",
    415: "The body is not JSON (Content-Type): send application/json",
    429: "Too many requests; retry after the Retry-After header's seconds",
    502: "The upstream engine failed",
    503: "A model or engine is loading, broken or at capacity; retry after Retry-After",
    504: "The engine did not answer in time",
}


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                               "schema": {"type": "integer"}}}


def errors(family: Family, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status it can send, with the family's schema."""
    model = ERROR_MODELS[family]
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        out[status] = {"model": model, "description": ERROR_DESCRIPTIONS[status]}
        if status in (429, 503):
            out[status]["headers"] = RETRY_AFTER
    return out


def error_response(request: Request, status: int, msg: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = error_body(family_of(request.url.path), status, msg, field)
    return JSONResponse(body, status_code=status, headers=headers)


def required_fields(request: Request | None) -> list[str]:
    """The fields the route's JSON body must have, for a message about a missing body."""
    route = request.scope.get("route") if request is not None else None
    body_field = getattr(route, "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    fields = getattr(model, "model_fields", None) or {}
    return [name for name, info in fields.items() if info.is_required()]


def _whole_body(err: dict[str, Any], request: Request | None) -> tuple[str, str | None]:
    """An empty body, ``null`` or a non-object where a JSON object was expected."""
    required = required_fields(request)
    what = ("a JSON object with " + ", ".join(required) if required
            else "a JSON object (at least {})")
    if err.get("type") == "missing":
        return f"request body is empty; send {what}", (required[0] if required else None)
    got = json.dumps(err.get("input"), ensure_ascii=False)[:80]
    return f"request body must be {what} (got {got})", (required[0] if required else None)


def describe_validation_error(exc: RequestValidationError,
                              request: Request | None = None) -> tuple[str, str | None]:
    """The first problem as 'field: what is wrong (got value)', naming nested fields a.b[0].c."""
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    err = errors[0]
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    if not loc and tuple(err.get("loc", ())) == ("body",) and err.get("type") in (
            "missing", "model_attributes_type", "model_type", "dict_type"):
        return _whole_body(err, request)
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


BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _integer_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model keeps numeric bounds as floats (``1.0``, and 2^63-1 rounded up
    to 2^63); put back the integers the models declared."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = MAX_ID if value == float(MAX_ID) else int(value)
            else:
                _integer_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _integer_bounds(item)


def _document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` without FastAPI's 422: this server answers every validation error
    with a 400 in the family's envelope, which each route documents itself."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            _integer_bounds(schema)
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    responses.pop("422", None)
                    # A JSON body of another media type is refused (deps.json_bodies_only).
                    content = operation.get("requestBody", {}).get("content", {})
                    if "application/json" in content and "415" not in responses:
                        model = ERROR_MODELS[family_of(path)].__name__
                        responses["415"] = {
                            "description": ERROR_DESCRIPTIONS[415],
                            "content": {"application/json": {"schema": {
                                "$ref": f"#/components/schemas/{model}"}}}}
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    app.openapi = _document(app)  # type: ignore[method-assign]

    @app.exception_handler(RongheError)
    async def _ronghe_error(request: Request, exc: RongheError) -> JSONResponse:
        retry = getattr(exc, "retry_after", 5 if exc.status_code in (429, 503) else None)
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return error_response(request, exc.status_code, exc.msg, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        msg, field = describe_validation_error(exc, request)
        return error_response(request, 400, msg, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            msg = f"method {request.method} not allowed on {request.url.path}"
        return error_response(request, exc.status_code, msg, headers=exc.headers)

    # Unexpected exceptions are answered (and logged once) by RequestContextMiddleware.
