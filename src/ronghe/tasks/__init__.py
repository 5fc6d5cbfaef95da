"""What workers run: the image, training and caption tasks, and add_prompt's prompt
enrichment.

``handlers(services)`` binds each task kind to the few services its job needs, through a
small typed context per kind (``context.py``); the in-process worker and ``ronghe worker``
(Celery) both run these.  Nothing here imports the HTTP layer.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import structlog

from ronghe.engines.diffusion.engine import ImageEngineProtocol, build_engine
from ronghe.jobs.runner import Handler, JobContext
from ronghe.queues import Kind
from ronghe.services import Services
from ronghe.tasks import captions, images, prompt, training
from ronghe.tasks.context import CaptionTaskContext, ImageTaskContext, TrainTaskContext

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
                                           enrich, services.image_metrics, previews))

    def run_training(job: JobContext) -> dict[str, Any]:
        return training.run(TrainTaskContext(
            job, services.files, services.loras, services.image_models,
            training.work_root(services.settings.data_dir), services.captioner,
            services.datasets, services.tasks.ended))

    def run_caption(job: JobContext) -> dict[str, Any]:
        return captions.run(CaptionTaskContext(job, services.files, services.captioner))

    return {Kind.IMAGE: run_image, Kind.TRAIN: run_training, Kind.CAPTION: run_caption}
