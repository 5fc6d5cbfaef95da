"""The model-pull feature: the admin's pull routes (the task: ronghe.tasks.downloads; the
worker that runs it: jobs.make_dispatcher)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ronghe.api.downloads import router
from ronghe.downloads.service import Downloads
from ronghe.features import BaseFeature
from ronghe.services import Services


class DownloadsFeature(BaseFeature):
    name = "downloads"

    def install(self, app: FastAPI, services: Services, registry: CollectorRegistry) -> None:
        app.state.downloads = Downloads(services)
        app.include_router(router.router)


feature = DownloadsFeature()
