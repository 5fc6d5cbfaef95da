"""Request bodies of the webhook endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ronghe.api.images.protocol import Flag, Lenient, _text


class WebhookSecretRequest(Lenient):
    # Make a new secret; the old one still signs (a second signature) for 24 hours.
    rotate: Flag = False


class WebhookDeliveriesRequest(Lenient):
    task_id: Annotated[str, _text(64)] = Field(min_length=1)
