"""Your chat API keys: create (the key is shown once), list (no secrets), revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.users.protocol import KeyCreate, KeyRef
from ronghe.api.users.serving import key_body, ok

router = APIRouter(prefix="/api/v1b/api_keys", tags=["account"])


@router.post("/create", summary="A new chat API key; the key is in this answer only")
def create(body: KeyCreate, user: TokenUser, services: ServicesDep) -> dict[str, Any]:
    row, secret = services.auth.create_own_key(user.id, body.name)
    return ok({**key_body(row), "key": secret})


@router.post("/list", summary="Your active API keys, newest first, without their secrets")
def list_keys(user: TokenUser, services: ServicesDep) -> dict[str, Any]:
    return ok({"items": [key_body(k) for k in services.auth.own_keys(user.id)]})


@router.post("/revoke", summary="Revoke one of your API keys")
def revoke(body: KeyRef, user: TokenUser, services: ServicesDep) -> dict[str, Any]:
    services.auth.revoke_own_key(user.id, body.id)
    return ok({"id": body.id, "revoked": True})
