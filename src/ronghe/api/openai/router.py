"""OpenAI-compatible routes, so the official ``openai`` package works against ``/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ronghe.api.deps import ApiPrincipal, ChatDep
from ronghe.api.openai import serving
from ronghe.api.openai.protocol import ChatCompletionRequest

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/chat/completions", response_model=None,
             summary="Chat completion (OpenAI-compatible)")
async def chat_completions(request: Request, body: ChatCompletionRequest, user: ApiPrincipal,
                           chat: ChatDep) -> Response:
    return await serving.complete(request, body, chat)


@router.get("/models", response_model=None, summary="Chat models (OpenAI-compatible)")
async def models(user: ApiPrincipal, chat: ChatDep) -> Response:
    return serving.list_models(chat)
