"""What the chat APIs (the vendor's, the OpenAI-compatible one, fusion) share: the view of
the process's chat objects a request uses, and the feature that adds their routes.

The engines themselves are the process's (``Services.chat``, built by ``ronghe.runtime`` in
``serve`` and ``worker`` alike); only the metrics, which live on the app's registry, are
made here.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from ronghe.engines.llm.metrics import ChatMetrics
from ronghe.engines.llm.registry import ChatEngines
from ronghe.features import BaseFeature
from ronghe.services import Services


@dataclass(frozen=True, slots=True)
class ChatState:
    """One request's view of ``Services``' chat objects (``ronghe.api.deps.get_chat``)."""

    engines: ChatEngines
    metrics: ChatMetrics
    # settings.chat_max_input_chars: every chat endpoint checks it before tokenizing.
    max_input_chars: int

    @classmethod
    def of(cls, services: Services) -> ChatState:
        if services.chat is None or services.chat_metrics is None:
            raise RuntimeError("no chat engines or chat metrics in this process: the app "
                               "runs ronghe.runtime and installs a chat feature first")
        return cls(services.chat, services.chat_metrics, services.settings.chat_max_input_chars)


class ChatApiFeature(BaseFeature):
    """A chat API (the vendor's or the OpenAI-compatible one) on the process's engines."""

    def __init__(self, name: str, router: APIRouter) -> None:
        self.name = name
        self.router = router

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        # Whichever chat feature installs first makes the metrics; the others share them.
        if services.chat_metrics is None:
            services.chat_metrics = ChatMetrics(registry)
        app.include_router(self.router)
