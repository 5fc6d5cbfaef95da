"""get_token and token revocation (Miaohua envelope)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ronghe.api.deps import RequestToken, ServicesDep, TokenUser

router = APIRouter(prefix="/api/v1b", tags=["account"])


class TokenRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    token: str
    expires_at: str


@router.post("/get_token", summary="Log in: email + password -> a token for every other call")
def get_token(body: TokenRequest, request: Request, services: ServicesDep) -> TokenResponse:
    client = request.client.host if request.client else ""
    issued = services.auth.login(body.email, body.password, client_ip=client)
    assert issued.expires_at is not None
    return TokenResponse(token=issued.secret,
                         expires_at=issued.expires_at.strftime("%Y-%m-%d %H:%M:%S"))


@router.post("/revoke_token", summary="Log out: the token in the request stops working")
def revoke_token(user: TokenUser, token: RequestToken, services: ServicesDep) -> dict[str, object]:
    services.auth.revoke_token(token)
    return {"code": 0, "info": {"revoked": True}, "msg": ""}
