"""Slows down password guessing without letting anyone lock other people out.

Following OWASP's authentication guidance: failures are counted per (account, client
address), so ten wrong passwords from one address lock neither the account's owner on
another address nor the other users behind the same proxy; after ``max_failures`` failures
that pair must wait, and every further failure doubles the wait (``lockout_seconds`` up to
``lockout_max_seconds``).  A success clears the pair; ``window_seconds`` without a failure
forgets it.  The counters live in the database, so every API process of a scale-out
deployment sees the same ones (and embedded mode needs nothing else).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict, deque
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ronghe.db import Database, utcnow
from ronghe.db.models import LoginFailure


def pair_key(email: str, address: str) -> str:
    return hashlib.sha256(f"{email.strip().lower()}|{address}".encode()).hexdigest()


class LoginThrottle:
    def __init__(self, db: Database, max_failures: int, window_seconds: float,
                 lockout_seconds: float = 30, lockout_max_seconds: float = 900) -> None:
        self.db = db
        self.max_failures = max_failures
        self.lockout = lockout_seconds
        self.lockout_max = max(lockout_seconds, lockout_max_seconds)
        # A lock must outlive the memory of the failures that caused it.
        self.forget = timedelta(seconds=max(window_seconds, self.lockout_max))

    def blocked(self, email: str, address: str) -> float:
        """Seconds until this pair may try again; 0 when it may now."""
        with self.db.reading() as c:
            until = c.scalar(select(LoginFailure.locked_until)
                             .where(LoginFailure.key_hash == pair_key(email, address)))
        if until is None:
            return 0.0
        return max(0.0, (until - utcnow()).total_seconds())

    def lock_for(self, failures: int) -> float:
        """The wait after the n-th failure in a row: 0 below the limit, then doubling."""
        over = failures - self.max_failures
        if over < 0:
            return 0.0
        return min(self.lockout * 2 ** min(over, 40), self.lockout_max)

    def failed(self, email: str, address: str) -> float:
        """Counts a failure; returns the wait it imposes (0 while under the limit)."""
        key, now = pair_key(email, address), utcnow()
        stale = now - self.forget
        with self.db.session() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.last_failure_at < stale))
            failures = self._count(s, key, now, stale)
            wait = self.lock_for(failures)
            until: datetime | None = now + timedelta(seconds=wait) if wait else None
            s.execute(update(LoginFailure).where(LoginFailure.key_hash == key)
                      .values(locked_until=until))
        return wait

    def _count(self, s: Session, key: str, now: datetime, stale: datetime) -> int:
        # One atomic UPDATE, so failures arriving at several processes at once all count.
        bump = (update(LoginFailure).where(LoginFailure.key_hash == key)
                .values(failures=case((LoginFailure.last_failure_at < stale, 1),
                                      else_=LoginFailure.failures + 1),
                        last_failure_at=now))
        if not s.execute(bump).rowcount:
            try:
                with s.begin_nested():
                    s.add(LoginFailure(key_hash=key, failures=1, last_failure_at=now))
                return 1
            except IntegrityError:  # another process inserted it first
                s.execute(bump)
        return int(s.scalar(select(LoginFailure.failures)
                            .where(LoginFailure.key_hash == key)) or 1)

    def succeeded(self, email: str, address: str) -> None:
        with self.db.session() as s:
            s.execute(delete(LoginFailure)
                      .where(LoginFailure.key_hash == pair_key(email, address)))


class SlidingWindow:
    """In-memory sliding window of events per key, per process (sign-ups per address)."""

    def __init__(self, max_events: int, window_seconds: float) -> None:
        self.max_events = max_events
        self.window = window_seconds
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._events[key]
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> float:
        """Seconds until the most limited key may act again; 0 when none is blocked."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._trim(key, now)
                if len(q) >= self.max_events:
                    wait = max(wait, self.window - (now - q[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._trim(key, now).append(now)
