"""Fusion routes: the later edition's path, the draft's, and the gateway-prefixed one."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ronghe.api.deps import ApiPrincipal, ChatDep, ServicesDep
from ronghe.api.envelopes import Family, errors
from ronghe.api.fusion import serving
from ronghe.api.fusion.protocol import FUSION_ERRORS, FUSION_STREAM, FusionRequest, FusionResponse

PATHS = ("/v1/fusion/chat-with-image", "/v1/fusion-new/chat-with-image",
         "/fusion/v1/chat-with-image")

router = APIRouter(tags=["fusion"])


async def chat_with_image(request: Request, body: FusionRequest, user: ApiPrincipal,
                          chat: ChatDep, services: ServicesDep) -> FusionResponse | Response:
    """Chat; when the last message asks for a picture, draw it and answer its URL."""
    return await serving.answer(request, body, user, chat, services)


for _index, _path in enumerate(PATHS):
    router.add_api_route(_path, chat_with_image, methods=["POST"], response_model=FusionResponse,
                         responses={200: FUSION_STREAM, **errors(Family.CHAT, *FUSION_ERRORS)},
                         include_in_schema=_index == 0, summary="Chat that draws (fusion)")
