"""Vendor chat routes: the documented path and the two that real clients post to."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ronghe.api.chat import serving
from ronghe.api.chat.protocol import ChatCompletionRequest
from ronghe.api.deps import ApiPrincipal, ChatDep

PATHS = ("/nlp/v1/chat/completions", "/v1/nlp/chat/completions",
         "/test/v1/nlp/chat/completions")

router = APIRouter(tags=["chat"])


async def chat_completions(request: Request, body: ChatCompletionRequest, user: ApiPrincipal,
                           chat: ChatDep) -> Response:
    """Chat with a configured model; ``stream: true`` answers with server-sent events."""
    return await serving.complete(request, body, chat)


for _index, _path in enumerate(PATHS):
    router.add_api_route(_path, chat_completions, methods=["POST"], response_model=None,
                         include_in_schema=_index == 0, summary="Chat completion (vendor API)")
