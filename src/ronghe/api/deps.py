"""FastAPI dependencies: the app's objects, and the two ways clients authenticate.

Each getter reads one named ``app.state`` attribute: ``services`` (the process's
``Services``, which also holds the chat engines and metrics ``get_chat`` hands out),
``training`` (the training routes' service).

- Miaohua/training endpoints: a get_token token in the JSON body (``token``), in a multipart
  field (``token``), or as ``Authorization: Bearer <token>``.
- Chat endpoints: ``Authorization: <API key>`` or ``Authorization: Bearer <API key>``; a
  get_token token works there too.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Request, params

from ronghe.api.chat.state import ChatState
from ronghe.api.middleware import NOT_JSON
from ronghe.api.training.serving import TrainingService
from ronghe.db.models import User
from ronghe.errors import Unauthorized, UnsupportedMediaType
from ronghe.services import Services


# Async because they do no I/O: a sync dependency would cost a threadpool hop per request.
async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_chat(request: Request) -> ChatState:
    return ChatState.of(request.app.state.services)


async def get_training(request: Request) -> TrainingService:
    return request.app.state.training


ServicesDep = Annotated[Services, Depends(get_services)]
ChatDep = Annotated[ChatState, Depends(get_chat)]
TrainingDep = Annotated[TrainingService, Depends(get_training)]


async def json_bodies_only(request: Request) -> None:
    """Every route's first dependency: a route that reads a JSON body refuses a body of
    another media type (a form, multipart, XML) with a 415, before authentication reads
    the body for a token.  ``BodyMiddleware`` has already made JSON of what it could
    (text/plain, a form that holds JSON) and marked the rest."""
    given = request.scope.get(NOT_JSON)
    if given is None:
        return
    body = getattr(request.scope.get("route"), "body_field", None)
    if body is not None and not isinstance(body.field_info, params.Form):
        raise UnsupportedMediaType(
            f"Content-Type {given or 'none'!r} is not supported here: send the body as JSON "
            "(Content-Type: application/json)")


def _authorization(request: Request) -> str:
    value = request.headers.get("authorization", "").strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip()
    return value


async def _body_token(request: Request) -> str:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype.startswith("multipart/") or ctype == "application/x-www-form-urlencoded":
        form = await request.form()  # cached: the endpoint's own form parsing reuses it
        value = form.get("token")
        if value is not None and not isinstance(value, str):
            value = (await value.read(4096)).decode("utf-8", "replace")  # sent as a file part
        return (value or "").strip()
    body = await request.body()
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    token = data.get("token") if isinstance(data, dict) else None
    return token.strip() if isinstance(token, str) else ""


async def request_token(request: Request) -> str:
    return _authorization(request) or await _body_token(request)


# Sync on purpose: FastAPI runs these in its threadpool, so database lookups never block the
# event loop that streams chat tokens and answers pollers.
def token_user(token: Annotated[str, Depends(request_token)], services: ServicesDep) -> User:
    if not token:
        raise Unauthorized(
            "token is required: send the get_token token as the JSON field 'token', "
            "a multipart field 'token', or 'Authorization: Bearer <token>'",
            field="token",
        )
    return services.auth.user_for_token(token)


def optional_token_user(request: Request, services: ServicesDep) -> User | None:
    """For public endpoints (forms) that show more to a signed-in user."""
    token = _authorization(request) or request.query_params.get("token", "")
    return services.auth.user_for_token(token) if token else None


def key_user(request: Request, services: ServicesDep) -> User:
    secret = _authorization(request)
    if not secret:
        raise Unauthorized("Authorization header with your API key is required")
    return services.auth.user_for_secret(secret)


RequestToken = Annotated[str, Depends(request_token)]
TokenUser = Annotated[User, Depends(token_user)]
OptionalTokenUser = Annotated[User | None, Depends(optional_token_user)]
ApiPrincipal = Annotated[User, Depends(key_user)]
