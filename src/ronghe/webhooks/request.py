"""The webhook fields of ``task_submit`` and ``train_submit``, checked at submit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ronghe.errors import BadRequest
from ronghe.jobs.events import COMPLETED, PROGRESS, START
from ronghe.webhooks import keys, ssrf

EVENTS = (START, PROGRESS, COMPLETED)
DEFAULT_EVENTS = [COMPLETED]
# Params key: the task row carries its webhook, so any process that changes the task can
# queue the delivery in the same transaction.
PARAM = "webhook"


@dataclass(frozen=True)
class Webhook:
    """Where a task's events go, and which ones: stored beside the job's input, under
    ``PARAM``, where the outbox reads it in any process that changes the task."""

    url: str
    events: tuple[str, ...]

    def to_param(self) -> dict[str, Any]:
        return {"url": self.url, "events": list(self.events)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Webhook | None:
        hook = params.get(PARAM)
        if not isinstance(hook, dict):
            return None
        return cls(str(hook["url"]), tuple(hook.get("events", ())))


def task_webhook(services: Any, user_id: int, webhook: str, callback_url: str,
                 events_filter: list[str] | None) -> Webhook | None:
    """The submit's webhook, checked, or None without one."""
    url = (webhook or "").strip()
    field = "webhook"
    if not url and (callback_url or "").strip():
        url, field = callback_url.strip(), "callback_url"
    elif url and (callback_url or "").strip() and callback_url.strip() != url:
        raise BadRequest("webhook and callback_url name the same thing; send one of them "
                         "(or the same URL in both)", field="callback_url")
    if not url:
        if events_filter:
            raise BadRequest("webhook_events_filter needs a webhook URL", field="webhook")
        return None
    events = list(dict.fromkeys(events_filter)) if events_filter else list(DEFAULT_EVENTS)
    for event in events:
        if event not in EVENTS:
            raise BadRequest(f"webhook_events_filter: {str(event)[:40]!r} is not an event; "
                             f"use a subset of {', '.join(EVENTS)}",
                             field="webhook_events_filter")
    allowed = ssrf.parse_networks(services.settings.webhook_allowed_networks)
    ssrf.resolve(url, allowed, field)
    keys.ensure(services.db, user_id)
    return Webhook(url, tuple(events))
