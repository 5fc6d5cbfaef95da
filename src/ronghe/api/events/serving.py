"""The ``task_events`` stream: server-sent events of a user's task changes, read from the
``task_events`` table (see ronghe.jobs.events for why the database and not the broker).

Each SSE event is one task: ``id`` the newest event row of that task in the batch, ``event:
task``, ``data`` what ``task_result`` (or ``train_progress``) answers now.  Several changes
of a task that arrive together are sent once, with its current state, so a slow reader
never falls behind.  A comment line goes out as a heartbeat when nothing else did.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from ronghe.db.base import MAX_ID
from ronghe.db.models import User
from ronghe.errors import BadRequest, RateLimited, RongheError
from ronghe.jobs import answers, events
from ronghe.services import Services

POLL_SECONDS = 0.5
# The token is checked again this often: a revoked or expired token ends the stream.
REAUTH_SECONDS = 60.0
RETRY_MS = 2000


class StreamLimiter:
    """Streams open per user in this process (each holds a connection and polls)."""

    def __init__(self) -> None:
        self._open: Counter[int] = Counter()
        self._lock = threading.Lock()

    def acquire(self, user_id: int, limit: int) -> None:
        with self._lock:
            if self._open[user_id] >= limit:
                raise RateLimited(f"at most {limit} task_events streams per user at once "
                                  "(task_events_max_streams); close one first")
            self._open[user_id] += 1

    def release(self, user_id: int) -> None:
        with self._lock:
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]


limiter = StreamLimiter()


def parse_last_id(value: str | None) -> int | None:
    """The event id to resume after, or None (no header, or an empty one: start now).

    Anything but ASCII digits up to MAX_ID is refused with a 400 rather than ignored: the
    ids this server sends are exactly such numbers, so another value is a client bug, and a
    silent restart from "now" would lose the events the client meant to resume.  (Unbounded,
    20 digits passed here and overflowed the database's 64-bit integer mid-stream.)"""
    if value is None or not value.strip():
        return None
    text = value.strip()
    # isdecimal() alone would also take other scripts' digits and int() would take "+1", "1_0".
    digits = text.isascii() and text.isdecimal()
    if not digits or int(text) > MAX_ID:
        # ascii(): the header may hold anything; the message must stay plain text.
        got = f"a {len(text)}-digit number" if digits else ascii(text[:40])
        raise BadRequest(f"Last-Event-ID must be an event id this stream sent: a whole number "
                         f"from 0 to {MAX_ID} (got {got})", field="Last-Event-ID")
    return int(text)


def _batch(services: Services, user_id: int, cursor: int, floor: int, sent: dict[int, float],
           base_url: str) -> tuple[list[str], int]:
    rows = events.read_since(services.db, user_id, cursor)
    fresh = [r for r in rows if r.id not in sent and r.id > floor]
    if not fresh:
        return [], cursor
    newest: dict[str, int] = {}
    for row in fresh:
        newest[row.task_id] = max(newest.get(row.task_id, 0), row.id)
    tasks = services.tasks.get_many(list(newest), user_id)
    out = []
    for task_id, event_id in sorted(newest.items(), key=lambda kv: kv[1]):
        task = tasks.get(task_id)
        if task is None:
            continue
        data = json.dumps(answers.answer(services, task, base_url), ensure_ascii=False,
                          separators=(",", ":"), default=str)
        out.append(f"id: {event_id}\nevent: task\ndata: {data}\n\n")
    now = time.monotonic()
    for row in fresh:
        sent[row.id] = now
    return out, max(cursor, max(r.id for r in fresh))


async def stream(services: Services, user: User, token: str, last_id: int | None,
                 base_url: str, request: Request, release: Any) -> AsyncIterator[str]:
    settings = services.settings
    try:
        # Without Last-Event-ID the stream starts now: only changes from here on.
        cursor = last_id if last_id is not None else await services.db.run_read(
            events.latest_id, services.db, user.id)
        floor = cursor  # the client has everything up to here
        sent: dict[int, float] = {}
        yield f"retry: {RETRY_MS}\n: connected, after event {cursor}\n\n"
        last_out = last_auth = time.monotonic()
        while not await request.is_disconnected():
            chunks, cursor = await services.db.run_read(_batch, services, user.id, cursor,
                                                        floor, sent, base_url)
            now = time.monotonic()
            for chunk in chunks:
                yield chunk
                last_out = now
            if now - last_out >= settings.task_events_heartbeat_seconds:
                yield ": heartbeat\n\n"
                last_out = now
            if now - last_auth >= REAUTH_SECONDS:
                last_auth = now
                try:
                    await services.db.run_read(services.auth.user_for_token, token)
                except RongheError:
                    return
            # Ids remembered only while a late commit could still show up below the cursor.
            horizon = now - 2 * events.LATE_COMMIT.total_seconds()
            for event_id in [i for i, at in sent.items() if at < horizon]:
                del sent[event_id]
            await asyncio.sleep(POLL_SECONDS)
    finally:
        release()


def open_stream(services: Services, user: User, token: str, last_event_id: str | None,
                base_url: str, request: Request) -> AsyncIterator[str]:
    # Checked before a stream slot is taken, so a refused request holds none.
    last_id = parse_last_id(last_event_id)
    limiter.acquire(user.id, services.settings.task_events_max_streams)
    done = threading.Event()

    def release() -> None:
        if not done.is_set():
            done.set()
            limiter.release(user.id)

    gen = stream(services, user, token, last_id, base_url, request, release)
    # A stream whose client left before it started never runs its finally: count it closed
    # when the generator is collected.
    weakref.finalize(gen, release)
    return gen


def webhook_secret(services: Services, user: User, rotate: bool) -> str:
    from ronghe.webhooks import keys

    return keys.current(services.db, services.settings, user.id, rotate)
