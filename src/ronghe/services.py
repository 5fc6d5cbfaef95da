"""The long-lived objects of one process, built once from Settings and shared by requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ronghe.auth.service import AuthService
from ronghe.catalog.service import LoraCatalog
from ronghe.db import Database
from ronghe.idempotency.service import IdempotencyService
from ronghe.jobs.store import TaskStore
from ronghe.settings import Settings
from ronghe.storage import make_storage
from ronghe.storage.files import FileService
from ronghe.storage.signing import UrlSigner
from ronghe.webhooks.outbox import on_task_change


@dataclass
class Services:
    settings: Settings
    db: Database
    auth: AuthService
    files: FileService
    tasks: TaskStore
    loras: LoraCatalog
    idempotency: IdempotencyService
    # Set by the app or worker that owns this Services (see ronghe.jobs.make_dispatcher).
    dispatcher: Any = None
    # Features register their own long-lived objects here (chat engines, job dispatch, …).
    extras: dict[str, Any] = field(default_factory=dict)
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
        tasks = TaskStore(db, settings.task_lease_seconds, settings.task_max_attempts)
        # Webhook deliveries are queued in the transaction of the task change they report.
        tasks.listeners.append(on_task_change)
        return cls(settings=settings, db=db, auth=AuthService(db, settings), files=files,
                   tasks=tasks, loras=LoraCatalog(db),
                   idempotency=IdempotencyService(db, settings.idempotency_ttl_seconds))

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()
        self.closers.clear()
        self.db.dispose()
