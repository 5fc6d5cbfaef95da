"""Your chat API keys: create (the key is shown once), list (no secrets), revoke."""

from __future__ import annotations

from fastapi import APIRouter

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.users.protocol import KeyCreate, KeyList, KeyRef, KeyRevoked, NewKey
from ronghe.api.users.serving import key_body

router = APIRouter(prefix="/api/v1b/api_keys", tags=["account"],
                   # The statuses its routes answer with, in the Miaohua envelope.
                   responses=errors(Family.MIAOHUA, 400, 401, 404, 409, 413))


# 409: the user already has as many keys as allowed.
@router.post("/create", summary="A new chat API key; the key is in this answer only",
             responses=errors(Family.MIAOHUA, 400, 401, 409, 413))
def create(body: KeyCreate, user: TokenUser, services: ServicesDep) -> MiaohuaOk[NewKey]:
    row, secret = services.auth.create_own_key(user.id, body.name)
    return miaohua_ok(NewKey(**key_body(row).model_dump(), key=secret))


@router.post("/list", summary="Your active API keys, newest first, without their secrets",
             responses=errors(Family.MIAOHUA, 400, 401, 413))
def list_keys(user: TokenUser, services: ServicesDep) -> MiaohuaOk[KeyList]:
    return miaohua_ok(KeyList(items=[key_body(k) for k in services.auth.own_keys(user.id)]))


@router.post("/revoke", summary="Revoke one of your API keys",
             responses=errors(Family.MIAOHUA, 400, 401, 404, 413))
def revoke(body: KeyRef, user: TokenUser, services: ServicesDep) -> MiaohuaOk[KeyRevoked]:
    services.auth.revoke_own_key(user.id, body.id)
    return miaohua_ok(KeyRevoked(id=body.id, revoked=True))
