"""First-run setup, sign-up, who am I, and changing one's password."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ronghe.api.client_address import client_address
from ronghe.api.deps import RequestToken, ServicesDep, TokenUser
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.users.protocol import (
    ChangePassword,
    Credentials,
    Me,
    PasswordChanged,
    SetupState,
    UserInfo,
)
from ronghe.api.users.serving import user_body

router = APIRouter(prefix="/api/v1b", tags=["account"])
# Every POST can be malformed or too large; token routes can be unauthorised.
BODY = (400, 413)
SIGNED_IN = (*BODY, 401)


@router.get("/setup", summary="Whether the server still needs its first account")
def setup_state(services: ServicesDep) -> MiaohuaOk[SetupState]:
    return miaohua_ok(SetupState(needs_setup=services.auth.accounts.needs_setup(),
                                 allow_signup=services.settings.allow_signup))


# 409: an account already exists.
@router.post("/setup", summary="Create the first account, an admin (only while none exists)",
             responses=errors(Family.MIAOHUA, *BODY, 409))
def setup(body: Credentials, services: ServicesDep) -> MiaohuaOk[UserInfo]:
    return miaohua_ok(user_body(services.auth.accounts.setup(body.email, body.password)))


# 403: sign-up is off; 409: the email is taken; 429: too many sign-ups from one address.
@router.post("/signup", summary="Create an account (when allow_signup is on)",
             responses=errors(Family.MIAOHUA, *BODY, 403, 409, 429))
def signup(body: Credentials, services: ServicesDep, request: Request) -> MiaohuaOk[UserInfo]:
    client = client_address(request.scope, services.settings.trusted_proxies)
    return miaohua_ok(user_body(services.auth.accounts.signup(body.email, body.password, client)))


@router.post("/me", summary="The account this token belongs to",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
def me(user: TokenUser, token: RequestToken, services: ServicesDep) -> MiaohuaOk[Me]:
    expires = services.auth.token_expiry(token)
    return miaohua_ok(Me(**user_body(user).model_dump(),
                         token_expires_at=expires.strftime("%Y-%m-%d %H:%M:%S") if expires
                         else ""))


# 429: too many wrong old passwords.
@router.post("/change_password", summary="Change your password; your other tokens are revoked",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 429))
def change_password(body: ChangePassword, user: TokenUser, token: RequestToken,
                    services: ServicesDep) -> MiaohuaOk[PasswordChanged]:
    revoked = services.auth.accounts.change_password(user, token, body.old_password,
                                                     body.new_password)
    return miaohua_ok(PasswordChanged(changed=True, revoked_tokens=revoked))
