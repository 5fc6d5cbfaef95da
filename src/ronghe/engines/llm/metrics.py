"""Chat generation metrics: time to first text, tokens and how each generation ended.

Recorded by the chat APIs around the engines' streams, on the app's own Prometheus registry;
the process keeps them in ``Services.chat_metrics`` next to the engines (``Services.chat``).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from ronghe.engines.llm.base import ChatDelta, ChatStream


class ChatMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("ronghe_chat_requests_total", "Chat generations finished",
                                ["model", "api", "outcome"], registry=registry)
        self.tokens = Counter("ronghe_chat_tokens_total", "Tokens in finished chat generations",
                              ["model", "kind"], registry=registry)
        self.first_token = Histogram(
            "ronghe_chat_time_to_first_token_seconds", "From the request to its first text",
            ["model"], registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )

    def watch(self, model: str, api: str, stream: ChatStream) -> ChatStream:
        return _Watched(self, model, api, stream)


class _Watched:
    """Passes a stream through, recording time to first text, tokens and how it ended."""

    def __init__(self, metrics: ChatMetrics, model: str, api: str, stream: ChatStream) -> None:
        self._metrics = metrics
        self._model = model
        self._api = api
        self._stream = stream
        self._start = time.perf_counter()
        self._first = True
        self._outcome: str | None = None

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> ChatDelta:
        try:
            delta = await self._stream.__anext__()
        except StopAsyncIteration:
            self._finish("ok")
            raise
        except Exception as exc:
            self._finish(type(exc).__name__)
            raise
        if self._first and (delta.text or delta.finish_reason):
            self._first = False
            self._metrics.first_token.labels(self._model).observe(
                time.perf_counter() - self._start)
        if delta.usage is not None:
            self._metrics.tokens.labels(self._model, "prompt").inc(delta.usage.prompt_tokens)
            self._metrics.tokens.labels(self._model, "completion").inc(
                delta.usage.completion_tokens)
        return delta

    async def aclose(self) -> None:
        self._finish("cancelled")
        await self._stream.aclose()

    def _finish(self, outcome: str) -> None:
        if self._outcome is None:
            self._outcome = outcome
            self._metrics.requests.labels(self._model, self._api, outcome).inc()
