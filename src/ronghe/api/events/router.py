"""Webhook secret, delivery log and the task_events stream: translate HTTP only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.events import serving
from ronghe.api.events.protocol import WebhookDeliveriesRequest, WebhookSecretRequest
from ronghe.errors import Unauthorized
from ronghe.webhooks.outbox import deliveries

router = APIRouter(prefix="/api/v1b", tags=["events"])


@router.post("/webhook_secret", summary="Your webhook signing secret (whsec_…)")
def webhook_secret(body: WebhookSecretRequest, user: TokenUser,
                   services: ServicesDep) -> dict[str, Any]:
    return serving.secret_body(services, user, body.rotate)


@router.post("/webhook_deliveries", summary="Webhook delivery log of one of your tasks")
def webhook_deliveries(body: WebhookDeliveriesRequest, user: TokenUser,
                       services: ServicesDep) -> dict[str, Any]:
    task = services.tasks.get(body.task_id, user.id)
    return {"code": 0, "info": {"task_id": task.id,
                                "deliveries": deliveries(services.db, task.id, user.id)},
            "msg": ""}


@router.get("/task_events", summary="Server-sent events of your tasks' changes")
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
