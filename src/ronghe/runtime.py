"""The process bootstrap ``ronghe serve`` (``create_app`` and its lifespan) and ``ronghe
worker`` both run: a worker is a server without HTTP, not a process wired differently.

``Runtime(services, role, answers)``, once the ``Services`` are built:

- builds the chat engines (``Services.chat``): every configured chat model, local llama.cpp
  or an upstream, each loaded on first use.  Every process has them, so add_prompt's image
  task (and fusion's ``mh_add_prompt``) enriches its prompt wherever it runs;
- registers the answer builders it is given (``Services.answers``): what ``task_events`` and
  webhooks send per task kind.  Only ``serve`` gives any: a worker sends neither.

``serving()`` (the app's lifespan, on the app's loop) or ``working()`` (a worker), while the
process runs:

- configures the process-wide CPU budget (``ronghe.engines.cpu``) from
  ``settings.cpu_threads``, which llama.cpp and torch share;
- gives the chat engines their event loop (``Services.loop``): they keep loop-bound state
  (HTTP clients, queues), so one loop drives them all.  In ``serve`` it is the app's; a
  worker runs no loop of its own, so the runtime runs one in a thread;
- starts the webhook sender where the role sends webhooks (``Role.sends_webhooks``): API
  processes only.  Whoever changes a task queues its deliveries in the same transaction (the
  outbox, ``ronghe.webhooks.outbox``); only API processes need outbound HTTP to receivers.

On the way out they stop the sender and close the chat engines on their loop.  Features
(``ronghe.features``) only add routes and what belongs to HTTP (metrics, the training routes'
service); nothing a worker needs is done there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from enum import StrEnum

import anyio
import structlog

from ronghe.engines.cpu import budget
from ronghe.engines.llm.registry import ChatEngines
from ronghe.jobs.answers import Answer
from ronghe.services import Services
from ronghe.webhooks.sender import WebhookSender

log = structlog.get_logger(__name__)

# How long a worker waits for its chat engines to close (a generation in flight ends first).
CLOSE_SECONDS = 30.0


class Role(StrEnum):
    SERVE = "serve"    # the HTTP API; in embedded mode its in-process worker runs the tasks
    WORKER = "worker"  # a Celery worker: runs tasks, answers no HTTP

    @property
    def sends_webhooks(self) -> bool:
        return self is Role.SERVE


class Runtime:
    def __init__(self, services: Services, role: Role,
                 answers: Mapping[str, Answer] | None = None) -> None:
        self.services = services
        self.role = role
        if services.chat is None:
            services.chat = ChatEngines(services.settings)
        services.readiness["chat"] = services.chat.readiness
        services.answers.update(answers or {})
        self.sender: WebhookSender | None = None

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        budget.configure(self.services.settings.cpu_threads)
        self.services.loop = loop
        if self.role.sends_webhooks:
            self.sender = WebhookSender(self.services)
            self.sender.start()
        log.debug("runtime started", role=self.role.value, cpu_threads=budget.total,
                  webhooks=self.sender is not None)

    def _stop_sender(self) -> None:
        if self.sender is not None:
            self.sender.stop()
            self.sender = None

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """``serve``'s part of the app lifespan, on the app's running loop."""
        self._start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(self._stop_sender)
            assert self.services.chat is not None  # __init__ built them
            await self.services.chat.aclose()
            self.services.loop = None

    @contextmanager
    def working(self) -> Iterator[None]:
        """A worker's: the chat engines' loop runs in a thread of its own while it works."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ronghe-chat-loop",
                                  daemon=True)
        thread.start()
        try:
            self._start(loop)
            yield
        finally:
            self._stop_sender()
            try:
                assert self.services.chat is not None  # __init__ built them
                asyncio.run_coroutine_threadsafe(self.services.chat.aclose(),
                                                 loop).result(CLOSE_SECONDS)
            except Exception:  # shutting down: a stuck engine must not keep the worker alive
                log.exception("closing the chat engines failed")
            finally:
                self.services.loop = None
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=CLOSE_SECONDS)
                if not thread.is_alive():
                    loop.close()
