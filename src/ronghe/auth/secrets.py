"""Random bearer secrets (login tokens, API keys) and the one-way hashes we store for them.

SHA-256 is enough here: the secrets carry 256 bits of randomness, so no KDF stretching is
needed, and a fast hash keeps per-request lookups cheap.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "rht_"
KEY_PREFIX = "rhk_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
