"""HMAC-signed, expiring file URLs, like the vendor's OSS links (``?Expires=…&Signature=…``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


class UrlSigner:
    def __init__(self, secret: str) -> None:
        # A key of its own, so a URL signature can never double as anything else's MAC.
        self._key = hmac.new(secret.encode(), b"ronghe file url v1", hashlib.sha256).digest()

    def signature(self, file_id: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{file_id}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, file_id: str, ttl_seconds: int, now: float | None = None) -> tuple[int, str]:
        expires = int((now if now is not None else time.time()) + ttl_seconds)
        return expires, self.signature(file_id, expires)

    def verify(self, file_id: str, expires: int, signature: str, now: float | None = None) -> str:
        """'' when valid, else the reason ('expired' or 'bad signature')."""
        # compare_digest refuses non-ASCII str; such a signature can never be ours anyway.
        if not signature.isascii() or not hmac.compare_digest(
                self.signature(file_id, expires), signature):
            return "bad signature"
        if expires < (now if now is not None else time.time()):
            return "expired"
        return ""
