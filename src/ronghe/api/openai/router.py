"""OpenAI-compatible routes, so the official ``openai`` package works against ``/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ronghe.api.chat.params import CHAT_ERRORS, STREAM
from ronghe.api.deps import ApiPrincipal, ChatDep
from ronghe.api.envelopes import Family, errors
from ronghe.api.openai import serving
from ronghe.api.openai.protocol import ChatCompletion, ChatCompletionRequest, ModelList

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/chat/completions", response_model=ChatCompletion,
             responses={200: STREAM, **errors(Family.OPENAI, *CHAT_ERRORS)},
             summary="Chat completion (OpenAI-compatible)")
async def chat_completions(request: Request, body: ChatCompletionRequest, user: ApiPrincipal,
                           chat: ChatDep) -> ChatCompletion | Response:
    return await serving.complete(request, body, chat)


@router.get("/models", responses=errors(Family.OPENAI, 401),
            summary="Chat models (OpenAI-compatible)")
async def models(user: ApiPrincipal, chat: ChatDep) -> ModelList:
    return serving.list_models(chat)
