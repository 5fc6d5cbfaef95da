"""What workers run: the image, training, caption and upscale tasks, and add_prompt's
prompt enrichment.

``handlers(services)`` binds each task kind to the few services its job needs, through a
small typed context per kind (``context.py``); the in-process worker and ``ronghe worker``
(Celery) both run these.  Nothing here imports the HTTP layer.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import structlog

from ronghe.engines.diffusion import upscalers
from ronghe.engines.diffusion.engine import ImageEngineProtocol, build_engine
from ronghe.jobs.runner import Handler, JobContext
from ronghe.queues import Kind
from ronghe.services import Services
from ronghe.tasks import captions, downloads, images, prompt, training, upscale
from ronghe.tasks.context import (
    CaptionTaskContext,
    DownloadTaskContext,
    ImageTaskContext,
    TrainTaskContext,
    UpscaleTaskContext,
)

log = structlog.get_logger(__name__)


def image_engine(services: Services) -> ImageEngineProtocol:
    """This process's image engine, built on first use on its model registry."""
    if services.images is None:
        engine = build_engine(services.settings, services.image_models)
        services.images = engine
        services.closers.append(engine.close)
        log.debug("image engine", **engine.describe())
    return services.images


def handlers(services: Services) -> dict[str, Handler]:
    """The task kinds this process runs, each bound to its services."""
    engine = image_engine(services)

    def run_image(job: JobContext) -> dict[str, Any]:
        # Read at run time: the chat engines' loop comes and goes with the process's
        # runtime (ronghe.runtime: the app's loop in serve, its own in a worker).
        enrich = (partial(prompt.rewrite, services.chat, loop=services.loop,
                          seed=job.params.get("seed"))
                  if services.chat is not None else None)
        settings = services.settings
        previews = settings.image_preview_seconds if settings.image_previews else 0.0
        return images.run(ImageTaskContext(job, services.files, services.loras, engine,
                                           enrich, services.image_metrics, previews,
                                           upscalers.folder(settings.models_path)))

    def run_training(job: JobContext) -> dict[str, Any]:
        settings = services.settings
        return training.run(TrainTaskContext(
            job, services.files, services.loras, services.image_models,
            training.work_root(settings.data_dir), services.captioner,
            services.datasets, services.tasks.ended, settings.device, settings.image_dtype))

    def run_caption(job: JobContext) -> dict[str, Any]:
        return captions.run(CaptionTaskContext(job, services.files, services.captioner))

    def run_upscale(job: JobContext) -> dict[str, Any]:
        settings = services.settings
        return upscale.run(UpscaleTaskContext(job, services.files,
                                              upscalers.folder(settings.models_path),
                                              settings.device))

    def run_download(job: JobContext) -> dict[str, Any]:
        # Only the API process's download worker takes these (jobs.make_dispatcher).
        from ronghe.catalog.folder import scan_all
        from ronghe.downloads.pull import HubAccess
        from ronghe.downloads.service import places

        settings = services.settings
        token = settings.hf_token.get_secret_value() if settings.hf_token else None
        return downloads.run(DownloadTaskContext(
            job, places(services), HubAccess(token, settings.hf_endpoint),
            partial(scan_all, services)))

    return {Kind.IMAGE: run_image, Kind.TRAIN: run_training, Kind.CAPTION: run_caption,
            Kind.UPSCALE: run_upscale, Kind.DOWNLOAD: run_download}
