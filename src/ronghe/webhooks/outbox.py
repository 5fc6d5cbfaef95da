"""The outbox: a delivery row per webhook event, written in the task change's transaction."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ronghe.db import Database, utcnow
from ronghe.jobs.events import PROGRESS, TaskChange
from ronghe.webhooks.models import WebhookDelivery
from ronghe.webhooks.request import PARAM

# A receiver gets progress at most this often per task.
PROGRESS_WEBHOOK_SECONDS = 2.0
MAX_LOG_ENTRIES = 20


def new_id() -> str:
    return "msg_" + secrets.token_hex(16)


def on_task_change(session: Session, change: TaskChange) -> None:
    hook = change.params.get(PARAM)
    if not isinstance(hook, dict) or change.event not in hook.get("events", ()):
        return
    now = utcnow()
    if change.event == PROGRESS:
        last = session.scalar(select(func.max(WebhookDelivery.created_at)).where(
            WebhookDelivery.task_id == change.task_id, WebhookDelivery.event == PROGRESS))
        if last is not None and now - last < timedelta(seconds=PROGRESS_WEBHOOK_SECONDS):
            return
    session.add(WebhookDelivery(
        id=new_id(), task_id=change.task_id, user_id=change.user_id, event=change.event,
        event_id=change.event_id, url=hook["url"], state="pending", attempts=0,
        next_attempt_at=now, created_at=now, log=[], last_error=""))


def deliveries(db: Database, task_id: str, user_id: int) -> list[dict[str, Any]]:
    """The delivery log of one task, for its owner."""
    with db.session() as s:
        rows = s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.task_id == task_id, WebhookDelivery.user_id == user_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.event_id))
        return [{
            "webhook_id": r.id, "event": r.event, "url": r.url, "state": r.state,
            "attempts": r.attempts, "last_status": r.last_status, "last_error": r.last_error,
            "next_attempt_at": r.next_attempt_at.isoformat() if r.state == "pending" else None,
            "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            "log": r.log[-MAX_LOG_ENTRIES:],
        } for r in rows]
