"""Webhook secret, delivery log and the task_events stream: translate HTTP only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.events import serving
from ronghe.api.events.protocol import (
    EVENT_STREAM,
    Delivery,
    TaskDeliveries,
    WebhookDeliveriesRequest,
    WebhookSecret,
    WebhookSecretRequest,
)
from ronghe.errors import Unauthorized
from ronghe.webhooks.outbox import deliveries

router = APIRouter(prefix="/api/v1b", tags=["events"])


SIGNED_IN = (400, 401, 413)


@router.post("/webhook_secret", summary="Your webhook signing secret (whsec_…)",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
def webhook_secret(body: WebhookSecretRequest, user: TokenUser,
                   services: ServicesDep) -> MiaohuaOk[WebhookSecret]:
    return miaohua_ok(WebhookSecret(secret=serving.webhook_secret(services, user, body.rotate)))


@router.post("/webhook_deliveries", summary="Webhook delivery log of one of your tasks",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
def webhook_deliveries(body: WebhookDeliveriesRequest, user: TokenUser,
                       services: ServicesDep) -> MiaohuaOk[TaskDeliveries]:
    task = services.tasks.get(body.task_id, user.id)
    rows = [Delivery(**row) for row in deliveries(services.db, task.id, user.id)]
    return miaohua_ok(TaskDeliveries(task_id=task.id, deliveries=rows))


# 429: more open streams than task_events_max_streams.
@router.get("/task_events", summary="Server-sent events of your tasks' changes",
            response_class=StreamingResponse,
            responses={200: EVENT_STREAM, **errors(Family.MIAOHUA, 400, 401, 429)})
def task_events(request: Request, services: ServicesDep,
                token: Annotated[str, Query(max_length=512)] = "",
                last_event_id: Annotated[str | None, Header(alias="Last-Event-ID",
                                                            max_length=32)] = None
                ) -> StreamingResponse:
    value = request.headers.get("authorization", "").strip()
    scheme, _, rest = value.partition(" ")
    secret = rest.strip() if scheme.lower() == "bearer" else token.strip()
    if not secret:
        raise Unauthorized("token is required: 'Authorization: Bearer <token>' or ?token=",
                           field="token")
    user = services.auth.user_for_token(secret)
    body = serving.open_stream(services, user, secret, last_event_id, str(request.base_url),
                               request)
    return StreamingResponse(body, media_type="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
