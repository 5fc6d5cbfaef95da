"""Per-user signing secrets (``whsec_`` + base64 of 32 bytes, as Standard Webhooks has it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from ronghe.db import Database, utcnow
from ronghe.webhooks.models import WebhookSecret

PREFIX = "whsec_"
# After a rotation the old secret signs too (a second v1 signature) for this long.
ROTATION_GRACE = timedelta(hours=24)


def derive(secret_key: str, user_id: int, salt: str) -> str:
    raw = hmac.new(secret_key.encode(), f"ronghe-webhook:{user_id}:{salt}".encode(),
                   hashlib.sha256).digest()
    return PREFIX + base64.b64encode(raw).decode()


def _server_key(settings: Any) -> str:
    return settings.secret_key.get_secret_value()


def ensure(db: Database, user_id: int) -> None:
    """Give the user a secret if they have none (a submit with a webhook does this)."""
    with db.session() as s:
        if s.get(WebhookSecret, user_id) is not None:
            return
    try:
        with db.session() as s:
            s.add(WebhookSecret(user_id=user_id, salt=secrets.token_hex(16)))
    except IntegrityError:
        pass  # a concurrent request made it


def current(db: Database, settings: Any, user_id: int, rotate: bool = False) -> str:
    ensure(db, user_id)
    with db.session() as s:
        row = s.get(WebhookSecret, user_id, with_for_update=rotate)
        assert row is not None
        if rotate:
            row.previous_salt, row.salt = row.salt, secrets.token_hex(16)
            row.rotated_at = utcnow()
        return derive(_server_key(settings), user_id, row.salt)


def signing_keys(db: Database, settings: Any, user_id: int) -> list[str]:
    """The current secret, and the previous one during its grace period."""
    ensure(db, user_id)
    with db.session() as s:
        row = s.get(WebhookSecret, user_id)
        assert row is not None
        keys = [derive(_server_key(settings), user_id, row.salt)]
        if row.previous_salt and row.rotated_at and utcnow() - row.rotated_at < ROTATION_GRACE:
            keys.append(derive(_server_key(settings), user_id, row.previous_salt))
        return keys


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, keyed by the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
