"""Slows down password guessing without letting anyone lock other people out.

Following OWASP's authentication guidance: failures are counted per (account, client
address), so ten wrong passwords from one address lock neither the account's owner on
another address nor the other users behind the same proxy; after ``max_failures`` failures
that pair must wait, and every further failure doubles the wait (``lockout_seconds`` up to
``lockout_max_seconds``).  A success clears the pair; ``window_seconds`` without a failure
forgets it.  The counters live in the database, so every API process of a scale-out
deployment sees the same ones (and embedded mode needs nothing else).

An attempt is counted *before* its password is checked (:meth:`LoginThrottle.reserve`), in
one transaction that also reads and sets the lock, so however many guesses arrive at once,
on however many processes, at most ``max_failures`` of them are checked before the lock
applies.  A success then clears the pair; a failure that set the lock starts its wait
afresh when the answer is known.  Attempts refused while the pair is locked change nothing:
they neither count nor extend the lock, so a stranger sharing the address cannot keep the
owner locked out by hammering.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ronghe.db import Database, utcnow
from ronghe.db.models import LoginFailure

# Rounds of "count, else insert, else read the lock" before a reservation gives up; only a
# success deleting the row, or a lock expiring, between two statements makes a round fail.
_ROUNDS = 5


@dataclass(frozen=True)
class Reservation:
    """A login attempt, counted before its password is checked."""

    key: str
    # > 0: the pair is locked this many more seconds; the attempt was refused, not counted.
    refused_for: float
    # The pair's failures with this attempt counted.
    failures: int = 0
    # The wait this attempt set by reaching the limit (0: none).
    lock: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.refused_for <= 0


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
        """Seconds until this pair may try again; 0 when it may now.  Read-only."""
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

    def reserve(self, email: str, address: str) -> Reservation:
        """Call before checking a password.  When ``allowed``, the attempt is already
        counted as a failure and the lock it earns already set: call :meth:`succeeded` if
        the password is right, :meth:`confirm_failure` if not.  Otherwise the pair stays
        locked ``refused_for`` seconds, and nothing was counted."""
        return self._take(pair_key(email, address))

    def confirm_failure(self, attempt: Reservation) -> None:
        """The password of an allowed attempt was wrong.  If that attempt set the lock, the
        wait starts now rather than when it was reserved, so it is the full wait after the
        failure however long the check took.  Only the attempt whose count is still the
        pair's moves it: once, never extending a lock set by another."""
        if not attempt.lock:
            return
        now = utcnow()
        with self.db.session() as s:
            s.execute(update(LoginFailure)
                      .where(LoginFailure.key_hash == attempt.key,
                             LoginFailure.failures == attempt.failures,
                             LoginFailure.locked_until.is_not(None))
                      .values(last_failure_at=now,
                              locked_until=now + timedelta(seconds=attempt.lock)))

    def succeeded(self, email: str, address: str) -> None:
        with self.db.session() as s:
            s.execute(delete(LoginFailure)
                      .where(LoginFailure.key_hash == pair_key(email, address)))

    def _take(self, key: str) -> Reservation:
        """One transaction: count an attempt unless the pair is locked."""
        now = utcnow()
        stale = now - self.forget
        # The count only moves while the pair is unlocked, so a locked pair's row is never
        # written by refused attempts.  The UPDATE holds the row (PostgreSQL: a row lock,
        # taken again after a concurrent writer commits, with this WHERE re-checked on the
        # new version; SQLite: the database write lock) until commit, so reading the new
        # count and setting the lock below cannot interleave with another attempt.
        count = (update(LoginFailure)
                 .where(LoginFailure.key_hash == key,
                        or_(LoginFailure.locked_until.is_(None),
                            LoginFailure.locked_until <= now))
                 .values(failures=LoginFailure.failures + 1, last_failure_at=now))
        with self.db.session() as s:
            # A write first, so SQLite takes its write lock before any read of this
            # transaction (a read-then-write transaction could fail under WAL instead of
            # waiting for the lock).
            s.execute(delete(LoginFailure).where(LoginFailure.last_failure_at < stale))
            for _ in range(_ROUNDS):
                if s.execute(count).rowcount:
                    failures = int(s.scalar(select(LoginFailure.failures)
                                            .where(LoginFailure.key_hash == key)) or 1)
                    return Reservation(key, 0.0, failures,
                                       self._lock(s, key, now, failures))
                until = s.scalar(select(LoginFailure.locked_until)
                                 .where(LoginFailure.key_hash == key))
                if until is not None and until > now:
                    return Reservation(key, (until - now).total_seconds())
                if until is None and self._insert(s, key, now):
                    return Reservation(key, 0.0, 1, self.lock_for(1))
            # Still undecided: act as if locked rather than let an uncounted guess through.
            return Reservation(key, max(self.lockout, 1.0))

    def _lock(self, s: Session, key: str, now: datetime, failures: int) -> float:
        wait = self.lock_for(failures)
        s.execute(update(LoginFailure).where(LoginFailure.key_hash == key)
                  .values(locked_until=now + timedelta(seconds=wait) if wait else None))
        return wait

    def _insert(self, s: Session, key: str, now: datetime) -> bool:
        """The pair's first failure; False when another process inserted it first."""
        wait = self.lock_for(1)
        try:
            with s.begin_nested():
                s.add(LoginFailure(key_hash=key, failures=1, last_failure_at=now,
                                   locked_until=now + timedelta(seconds=wait) if wait
                                   else None))
            return True
        except IntegrityError:
            return False


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
