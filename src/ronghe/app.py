"""The app factory: Settings in, a FastAPI app out.  The process itself (chat engines, CPU
budget, answer builders, webhook sender) is ``ronghe.runtime``'s, as in a worker; features
plug their routes in through ``features``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from ronghe import __version__, features, tasks
from ronghe.api import account, answers, docs, envelopes, files, system, web
from ronghe.api.deps import json_bodies_only
from ronghe.api.middleware import BodyMiddleware, HttpMetrics, RequestContextMiddleware
from ronghe.api.users import admin, keys
from ronghe.api.users import router as users
from ronghe.catalog import folder
from ronghe.db.migrate import upgrade
from ronghe.jobs import make_dispatcher
from ronghe.runtime import Role, Runtime
from ronghe.services import Services
from ronghe.settings import Settings


def create_app(settings: Settings, *, services: Services | None = None,
               migrate: bool = True) -> FastAPI:
    """Build the app.  ``migrate`` brings the schema up to date on startup (embedded mode)."""
    services = services or Services.build(settings)
    runtime = Runtime(services, Role.SERVE, answers.builders())
    if services.dispatcher is None:
        services.dispatcher = make_dispatcher(services, tasks.handlers(services))
    dispatcher = services.dispatcher
    if migrate:
        upgrade(services.db.engine)
        # LoRA files of <data_dir>/loras into the catalog (image models: the registry scans).
        folder.sync_at_start(services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with runtime.serving():
                for feature in features.enabled():
                    await feature.start(app, services)
                dispatcher.start()
                try:
                    yield
                finally:
                    await anyio.to_thread.run_sync(dispatcher.stop)
                    for feature in reversed(features.enabled()):
                        await feature.stop(app, services)
        finally:
            services.close()

    app = FastAPI(
        title="Ronghe",
        version=__version__,
        description="Self-hosted server for SenseTime's fusion API: chat, Miaohua image "
        "tasks and LoRA training on open models.",
        lifespan=lifespan,
        # /docs and /redoc are ronghe.api.docs's: served offline, under the web app's CSP.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(json_bodies_only)],
    )
    app.state.services = services
    app.state.runtime = runtime
    registry = CollectorRegistry()
    app.state.metrics_registry = registry

    envelopes.install(app)
    app.include_router(system.router)
    app.include_router(account.router)
    app.include_router(files.router)
    app.include_router(users.router)
    app.include_router(keys.router)
    app.include_router(admin.router)
    for feature in features.enabled():
        feature.install(app, services, registry)
    docs.install(app, services)
    web.install(app, services)  # last: it answers only what no API route matched

    app.add_middleware(BodyMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=HttpMetrics(registry))
    return app
