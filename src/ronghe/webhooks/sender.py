"""Delivering the outbox: claim, sign, post, record; retry with exponential backoff.

Every API process (and ``ronghe worker``) runs one ``WebhookSender``.  A delivery is claimed
with a conditional UPDATE that sets a lease (``locked_until``), so on the healthy path
exactly one process sends each event; a process that dies mid-send leaves a lease that
expires, and another process (or this one after a restart) sends the event again with the
same ``webhook-id``, which receivers use to deduplicate.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import delete, or_, select, update

from ronghe.db import utcnow
from ronghe.errors import NotFound
from ronghe.jobs import answers
from ronghe.jobs.events import prune
from ronghe.jobs.runner import worker_id
from ronghe.webhooks import keys, ssrf
from ronghe.webhooks.models import WebhookDelivery as D
from ronghe.webhooks.outbox import MAX_LOG_ENTRIES

log = structlog.get_logger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024
POLL_SECONDS = 0.5
BATCH = 16
SENDERS = 4
USER_AGENT = "Ronghe-Webhooks/1"
# Delivered and failed deliveries stay readable in the delivery log this long.
DELIVERY_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str
    ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``attempts`` failures: base, 2 base, 4 base …"""
    return min(cap, base * 2 ** max(0, attempts - 1))


def post(target: ssrf.Target, headers: dict[str, str], body: bytes,
         timeout: float) -> Outcome:
    """One POST to the checked address; no redirects; at most MAX_RESPONSE_BYTES read."""
    host = str(target.address)
    host = f"[{host}]" if isinstance(target.address, ipaddress.IPv6Address) else host
    url = f"{target.scheme}://{host}:{target.port}{target.target}"
    default_port = {"http": 80, "https": 443}[target.scheme]
    authority = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):
        authority = f"[{target.host}]" + ("" if target.port == default_port
                                          else f":{target.port}")
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                          follow_redirects=False, trust_env=False) as client, client.stream(
                "POST", url, content=body, extensions=extensions,
                headers={**headers, "host": authority}) as response:
            read = 0
            for chunk in response.iter_bytes():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break  # the answer's body is not used; never read an endless one
            status = response.status_code
            error = ""
            if 300 <= status < 400:
                where = response.headers.get("location", "")[:200]
                error = f"redirect to {where!r} not followed"
            elif not 200 <= status < 300:
                error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"[:300]
    return Outcome(status, error, int((time.perf_counter() - started) * 1000))


class WebhookSender:
    def __init__(self, services: Any, poll_seconds: float = POLL_SECONDS) -> None:
        self.services = services
        self.settings = services.settings
        self.db = services.db
        self.poll = poll_seconds
        self.me = worker_id("webhooks")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._last_prune = 0.0

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=2 * self.settings.webhook_timeout_seconds + 30)

    def start(self) -> None:
        self._stop.clear()
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="ronghe-webhook")
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ronghe-webhooks")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._claim()
                if claimed and self._pool is not None:
                    # One task's events go out in order, one after the other; different
                    # tasks' in parallel (a slow receiver delays only its own).
                    groups: dict[str, list[str]] = {}
                    for delivery_id, task_id in claimed:
                        groups.setdefault(task_id, []).append(delivery_id)
                    list(self._pool.map(self._deliver_all, groups.values()))
                    continue
                self._housekeeping()
            except Exception:  # a database outage must not end the loop
                log.exception("webhook loop error")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _housekeeping(self) -> None:
        """Hourly, in whichever process gets there: old task events, delivery rows and
        expired Idempotency-Key answers go (each delete is idempotent)."""
        now = time.monotonic()
        if now - self._last_prune > 3600:
            self._last_prune = now
            prune(self.db)
            with self.db.session() as s:
                s.execute(delete(D).where(D.state != "pending",
                                          D.created_at < utcnow() - DELIVERY_RETENTION))
            self.services.idempotency.prune()

    def claim(self, limit: int = BATCH) -> list[str]:
        """Due deliveries this sender now holds (oldest event first)."""
        return [delivery_id for delivery_id, _ in self._claim(limit)]

    def _claim(self, limit: int = BATCH) -> list[tuple[str, str]]:
        now = utcnow()
        due = (D.state == "pending", D.next_attempt_at <= now,
               or_(D.locked_until.is_(None), D.locked_until < now))
        mine: list[tuple[str, str]] = []
        with self.db.session() as s:
            rows = s.execute(select(D.id, D.task_id).where(*due)
                             .order_by(D.next_attempt_at, D.event_id).limit(limit)).all()
            for delivery_id, task_id in rows:
                result = s.execute(update(D).where(D.id == delivery_id, *due).values(
                    locked_until=now + self.lease, locked_by=self.me))
                if result.rowcount:
                    mine.append((delivery_id, task_id))
        return mine

    def _deliver_all(self, delivery_ids: list[str]) -> None:
        for delivery_id in delivery_ids:
            self.deliver(delivery_id)

    def _body(self, row: D) -> str | None:
        if row.body is not None:
            return row.body
        try:
            task = self.services.tasks.get(row.task_id)
        except NotFound:
            return None
        payload = {"event": row.event,
                   **answers.answer(self.services, task, answers.base_url(self.settings))}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
        with self.db.session() as s:
            s.execute(update(D).where(D.id == row.id, D.locked_by == self.me,
                                      D.body.is_(None)).values(body=body))
        return body

    def deliver(self, delivery_id: str) -> Outcome | None:
        try:
            return self._deliver(delivery_id)
        except Exception:
            log.exception("webhook delivery crashed", webhook_id=delivery_id)
            return None

    def _deliver(self, delivery_id: str) -> Outcome | None:
        with self.db.session() as s:
            row = s.get(D, delivery_id)
        if row is None or row.locked_by != self.me or row.state != "pending":
            return None
        body = self._body(row)
        if body is None:  # the task is gone (its user was deleted)
            self._record(row, Outcome(None, "task no longer exists", 0), final=True)
            return None
        allowed = ssrf.parse_networks(self.settings.webhook_allowed_networks)
        try:
            target = ssrf.resolve(row.url, allowed)
        except ssrf.Refused as exc:
            outcome = Outcome(None, f"refused: {exc.msg}"[:300], 0)
        else:
            stamp = int(time.time())
            signatures = " ".join(keys.sign(k, row.id, stamp, body)
                                  for k in keys.signing_keys(self.db, self.settings,
                                                             row.user_id))
            headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                       "webhook-id": row.id, "webhook-timestamp": str(stamp),
                       "webhook-signature": signatures}
            outcome = post(target, headers, body.encode(), self.settings.webhook_timeout_seconds)
        self._record(row, outcome)
        return outcome

    def _record(self, row: D, outcome: Outcome, final: bool = False) -> None:
        now = utcnow()
        attempts = row.attempts + 1
        entry = {"at": now.isoformat(), "status": outcome.status, "error": outcome.error,
                 "ms": outcome.ms}
        values: dict[str, Any] = {"attempts": attempts, "last_status": outcome.status,
                                  "last_error": outcome.error, "locked_until": None,
                                  "locked_by": None,
                                  "log": [*(row.log or []), entry][-MAX_LOG_ENTRIES:]}
        if outcome.ok:
            values.update(state="delivered", delivered_at=now)
        elif final or attempts >= self.settings.webhook_max_attempts:
            values.update(state="failed")
        else:
            delay = backoff(attempts, self.settings.webhook_retry_base_seconds,
                            self.settings.webhook_retry_max_seconds)
            values.update(next_attempt_at=now + timedelta(seconds=delay))
        with self.db.session() as s:
            s.execute(update(D).where(D.id == row.id, D.locked_by == self.me).values(**values))
        log.info("webhook attempt", webhook_id=row.id, webhook_event=row.event,
                 status=outcome.status, error=outcome.error, attempt=attempts,
                 state=values.get("state", "pending"))
