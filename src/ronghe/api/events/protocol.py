"""Request bodies of the webhook endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ronghe.api.envelopes import Body
from ronghe.api.fields import text
from ronghe.api.images.protocol import Flag, Lenient


class WebhookSecretRequest(Lenient):
    # Make a new secret; the old one still signs (a second signature) for 24 hours.
    rotate: Flag = False


class WebhookDeliveriesRequest(Lenient):
    task_id: Annotated[str, text(64)] = Field(min_length=1)


# --- responses


class WebhookSecret(Body):
    secret: str = Field(description="whsec_…: verifies webhook-signature (Standard Webhooks)")


class Delivery(Body):
    webhook_id: str = Field(description="the webhook-id header: stable across retries")
    event: str
    url: str
    state: str = Field(description="pending, delivered or failed")
    attempts: int
    last_status: int | None = Field(description="the receiver's last HTTP status")
    last_error: str | None
    next_attempt_at: str | None = Field(description="ISO time of the next try while pending")
    delivered_at: str | None
    log: list[dict[str, Any]] = Field(description="the latest attempts")


class TaskDeliveries(Body):
    task_id: str
    deliveries: list[Delivery]


EVENT_STREAM: dict[str, Any] = {
    "description": "server-sent events: `event: task`, `id: <n>`, `data: <task_result JSON>`; "
                   "a comment heartbeat every 15 s; resume with Last-Event-ID",
    # One server-sent event (what a client's EventSource hands over), not the raw text.
    "content": {"text/event-stream": {"schema": {
        "type": "object",
        "properties": {"event": {"type": "string", "enum": ["task"]},
                       "id": {"type": "string"},
                       "data": {"type": "string", "description": "task_result's JSON"}},
    }}},
}
