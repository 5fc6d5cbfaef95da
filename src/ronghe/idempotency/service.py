"""Idempotent requests, stored in the database so they hold across restarts and processes.

The first request with a key inserts a ``running`` row (the unique (user, key) constraint
makes exactly one of several concurrent requests the first), does the work and stores its
answer.  A later request with the key and the same content gets that answer back; with
other content, HTTP 409.  A request that failed leaves no row, so it can be retried with
the same key.  Keys expire after ``idempotency_ttl_seconds`` (24 h by default).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ronghe.db import Database, utcnow
from ronghe.errors import BadRequest, Conflict
from ronghe.idempotency.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# A first request still "running" after this long died with its process: its key is free.
STALE_RUNNING = timedelta(minutes=5)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def fingerprint(endpoint: str, content: Any) -> str:
    text = json.dumps([endpoint, content], sort_keys=True, ensure_ascii=False, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: str) -> str:
    if not KEY_RE.match(key):
        raise BadRequest(f"{HEADER} must be 1-{MAX_KEY_CHARS} visible ASCII characters "
                         f"(got {len(key)} characters)", field=HEADER)
    return key


class IdempotencyService:
    def __init__(self, db: Database, ttl_seconds: int) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_seconds)

    def run(self, user_id: int, key: str | None, endpoint: str, content: Any,
            work: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """(the answer, whether it is a replay of the first one)."""
        if key is None:
            return work(), False
        key = check_key(key)
        fp = fingerprint(endpoint, content)
        existing = self._begin(user_id, key, endpoint, fp)
        if existing is not None:
            return existing, True
        try:
            answer = work()
        except BaseException:
            self._forget(user_id, key)
            raise
        with self.db.session() as s:
            s.execute(update(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key).values(
                state="done", response=answer))
        return answer, False

    def _begin(self, user_id: int, key: str, endpoint: str,
               fp: str) -> dict[str, Any] | None:
        now = utcnow()
        for _ in range(3):
            with self.db.session() as s:
                s.execute(delete(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id, IdempotencyKey.key == key,
                    IdempotencyKey.created_at < now - self.ttl))
                s.execute(delete(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id, IdempotencyKey.key == key,
                    IdempotencyKey.state == "running",
                    IdempotencyKey.created_at < now - STALE_RUNNING))
            try:
                with self.db.session() as s:
                    s.add(IdempotencyKey(user_id=user_id, key=key, endpoint=endpoint,
                                         fingerprint=fp, state="running", created_at=now))
                return None
            except IntegrityError:
                pass
            with self.db.session() as s:
                row = s.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                           IdempotencyKey.key == key))
                if row is None:
                    continue  # it expired or failed in between: try to be the first again
                if row.fingerprint != fp:
                    raise Conflict(
                        f"{HEADER} {key[:64]!r} was already used with a different request "
                        f"(on {row.endpoint} at {row.created_at.strftime(TIME_FORMAT)}); "
                        "use a new key for a new request", field=HEADER)
                if row.state != "done" or row.response is None:
                    raise Conflict(f"{HEADER} {key[:64]!r}: the first request with this key "
                                   "is still being handled; retry in a moment", field=HEADER)
                return dict(row.response)
        raise Conflict(f"{HEADER} {key[:64]!r}: could not be recorded; retry", field=HEADER)

    def _forget(self, user_id: int, key: str) -> None:
        try:
            with self.db.session() as s:
                s.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                       IdempotencyKey.key == key,
                                                       IdempotencyKey.state == "running"))
        except Exception:  # the stale-running rule frees the key later anyway
            pass

    def prune(self) -> int:
        with self.db.session() as s:
            return s.execute(delete(IdempotencyKey).where(
                IdempotencyKey.created_at < utcnow() - self.ttl)).rowcount or 0
