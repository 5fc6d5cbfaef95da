"""First-run setup, sign-up, who am I, and changing one's password."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ronghe.api.deps import RequestToken, ServicesDep, TokenUser
from ronghe.api.users.protocol import ChangePassword, Credentials
from ronghe.api.users.serving import ok, user_body

router = APIRouter(prefix="/api/v1b", tags=["account"])


@router.get("/setup", summary="Whether the server still needs its first account")
def setup_state(services: ServicesDep) -> dict[str, Any]:
    return ok({"needs_setup": services.auth.accounts.needs_setup(),
               "allow_signup": services.settings.allow_signup})


@router.post("/setup", summary="Create the first account, an admin (only while none exists)")
def setup(body: Credentials, services: ServicesDep) -> dict[str, Any]:
    return ok(user_body(services.auth.accounts.setup(body.email, body.password)))


@router.post("/signup", summary="Create an account (when allow_signup is on)")
def signup(body: Credentials, services: ServicesDep, request: Request) -> dict[str, Any]:
    client = request.client.host if request.client else ""
    return ok(user_body(services.auth.accounts.signup(body.email, body.password, client)))


@router.post("/me", summary="The account this token belongs to")
def me(user: TokenUser, token: RequestToken, services: ServicesDep) -> dict[str, Any]:
    expires = services.auth.token_expiry(token)
    return ok({**user_body(user),
               "token_expires_at": expires.strftime("%Y-%m-%d %H:%M:%S") if expires else ""})


@router.post("/change_password", summary="Change your password; your other tokens are revoked")
def change_password(body: ChangePassword, user: TokenUser, token: RequestToken,
                    services: ServicesDep) -> dict[str, Any]:
    revoked = services.auth.accounts.change_password(user, token, body.old_password,
                                                     body.new_password)
    return ok({"changed": True, "revoked_tokens": revoked})
