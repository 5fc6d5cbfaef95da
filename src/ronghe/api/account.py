"""get_token and token revocation (Miaohua envelope)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ronghe.api.client_address import client_address
from ronghe.api.deps import RequestToken, ServicesDep, TokenUser
from ronghe.api.envelopes import Body, Family, MiaohuaOk, errors, miaohua_ok

router = APIRouter(prefix="/api/v1b", tags=["account"])


class TokenRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(Body):
    token: str
    expires_at: str = Field(description="YYYY-MM-DD HH:MM:SS, UTC")


class Revoked(Body):
    revoked: bool


# 401: wrong email or password; 429: too many failed logins.
@router.post("/get_token", summary="Log in: email + password -> a token for every other call",
             responses=errors(Family.MIAOHUA, 400, 401, 413, 429))
def get_token(body: TokenRequest, request: Request, services: ServicesDep) -> TokenResponse:
    client = client_address(request.scope, services.settings.trusted_proxies)
    issued = services.auth.login(body.email, body.password, client_ip=client)
    assert issued.expires_at is not None
    return TokenResponse(token=issued.secret,
                         expires_at=issued.expires_at.strftime("%Y-%m-%d %H:%M:%S"))


@router.post("/revoke_token", summary="Log out: the token in the request stops working",
             responses=errors(Family.MIAOHUA, 401, 413))
def revoke_token(user: TokenUser, token: RequestToken,
                 services: ServicesDep) -> MiaohuaOk[Revoked]:
    services.auth.revoke_token(token)
    return miaohua_ok(Revoked(revoked=True))
