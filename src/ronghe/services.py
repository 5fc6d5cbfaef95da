"""The long-lived objects of one process, built once from Settings and shared by requests.

Every object has its own typed field, so a reader sees here everything a process holds and
who may be missing it: the chat engines in every process that ran ``ronghe.runtime`` (``serve``
and ``worker`` alike), the image engine where tasks run (``ronghe.tasks.handlers``), a
captioner only when one is configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ronghe.auth.service import AuthService
from ronghe.catalog.service import LoraCatalog
from ronghe.datasets.service import DatasetService
from ronghe.db import Database
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.idempotency.service import IdempotencyService
from ronghe.jobs.answers import Answer
from ronghe.jobs.store import Limits, TaskStore
from ronghe.settings import Settings
from ronghe.storage import make_storage
from ronghe.storage.files import FileService
from ronghe.storage.signing import UrlSigner
from ronghe.training.settle import on_task_change as training_ended
from ronghe.webhooks.outbox import on_task_change

if TYPE_CHECKING:  # heavy imports (torch, llama.cpp) stay out of CLI commands that need none
    from ronghe.engines.diffusion.engine import ImageEngineProtocol
    from ronghe.engines.llm.metrics import ChatMetrics
    from ronghe.engines.llm.registry import ChatEngines
    from ronghe.engines.training.captions import Captioner
    from ronghe.jobs.dispatch import Dispatcher
    from ronghe.tasks.metrics import ImageMetrics


@dataclass
class Services:
    settings: Settings
    db: Database
    auth: AuthService
    files: FileService
    tasks: TaskStore
    loras: LoraCatalog
    datasets: DatasetService
    # The one image model registry of this process: a model marked broken is broken for all.
    image_models: ModelRegistry
    idempotency: IdempotencyService
    # Set by the app or worker that owns this Services (see ronghe.jobs.make_dispatcher).
    dispatcher: Dispatcher | None = None
    # Where image tasks run in this process (ronghe.tasks.handlers builds it).
    images: ImageEngineProtocol | None = None
    image_metrics: ImageMetrics | None = None
    # This process's chat engines (ronghe.runtime builds them, in serve and worker alike):
    # the chat APIs answer from them and add_prompt's image tasks enrich prompts with them.
    chat: ChatEngines | None = None
    # The chat APIs' metrics, on the app's registry (the first chat feature installed sets it).
    chat_metrics: ChatMetrics | None = None
    # The loop the chat engines run on, since they keep loop-bound state: the app's in serve,
    # one of the runtime's own in a worker (ronghe.runtime).
    loop: asyncio.AbstractEventLoop | None = None
    # task kind -> what task_events and webhooks send for it (registered by ronghe.runtime).
    answers: dict[str, Answer] = field(default_factory=dict)
    # Describes a training image after its trigger word; None: every image gets the same caption.
    captioner: Captioner | None = None
    # name -> () -> (ready, detail); /readyz reports them all.
    readiness: dict[str, Callable[[], tuple[bool, str]]] = field(default_factory=dict)
    # Called in reverse order on shutdown.
    closers: list[Callable[[], Any]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        settings.prepare()
        db = Database(settings.effective_database_url)
        assert settings.secret_key is not None  # prepare() guarantees it
        signer = UrlSigner(settings.secret_key.get_secret_value())
        files = FileService(db, make_storage(settings), signer,
                            settings.signed_url_ttl_seconds, settings.public_base_url)
        tasks = TaskStore(db, settings.task_lease_seconds, settings.task_max_attempts,
                          Limits(settings.max_pending_tasks_per_user,
                                 settings.task_submit_rate_per_minute))
        # Webhook deliveries are queued in the transaction of the task change they report.
        tasks.listeners.append(on_task_change)
        # A training that ends without its handler (never ran, worker lost) ends its LoRA.
        tasks.listeners.append(training_ended)
        return cls(settings=settings, db=db, auth=AuthService(db, settings), files=files,
                   tasks=tasks, loras=LoraCatalog(db), datasets=DatasetService(db, files),
                   image_models=ModelRegistry(settings),
                   idempotency=IdempotencyService(db, settings.idempotency_ttl_seconds),
                   captioner=_captioner(settings))

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()
        self.closers.clear()
        self.db.dispose()


def _captioner(settings: Settings) -> Captioner | None:
    """The configured image-to-text model; it loads its weights on first use."""
    if not settings.captioner_model:
        return None
    from ronghe.engines.captioning import ImageCaptioner

    return ImageCaptioner(settings.captioner_model, settings.captioner_prompt, settings.device)
