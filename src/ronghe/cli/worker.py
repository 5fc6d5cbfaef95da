"""``ronghe worker``: a Celery worker for image and training tasks (scale-out mode)."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from ronghe.cli import ConfigFile, DataDir, err, fail, load_settings
from ronghe.queues import all_queues
from ronghe.settings import Settings


def default_queues(settings: Settings) -> list[str]:
    """Every image family, plus training: a worker that can run anything, models dropped
    into the models folder after it started included (not only the configured ones)."""
    from ronghe.engines.diffusion.families import FAMILIES

    return all_queues({m.family for m in settings.image_models} | set(FAMILIES))


def worker(
    queues: Annotated[str | None, typer.Option(
        "--queues", "-Q", help="Comma-separated queues: images.<family> (demo, sd15, sd2, "
        "sdxl, flux, sd3, zimage, flux2) and training. Default: all of them.",
        show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        help="Torch device for this worker: cpu, cuda, cuda:N, mps. Env: RONGHE_DEVICE.",
        show_default=False)] = None,
    include: Annotated[list[str] | None, typer.Option(
        "--import", "-I", help="Extra module(s) to import that register job handlers.",
        show_default=False)] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Run one Celery worker: one task at a time on one device. Needs RONGHE_BROKER_URL and,
    shared with the API processes, RONGHE_DATABASE_URL, RONGHE_STORAGE_URL, RONGHE_SECRET_KEY."""
    from ronghe import tasks
    from ronghe.engines.cpu import budget
    from ronghe.jobs.celery_dispatch import run_worker
    from ronghe.logs import configure
    from ronghe.runtime import Role, Runtime
    from ronghe.services import Services

    settings = load_settings(data_dir, config, device=device)
    if not settings.broker_url:
        fail("worker needs a broker: set RONGHE_BROKER_URL (redis://… or amqp://…)")
    configure(settings.log_level, settings.log_json)
    services = Services.build(settings)
    # The bootstrap serve runs too: chat engines (add_prompt), the CPU budget; no webhooks.
    runtime = Runtime(services, Role.WORKER)
    handlers = tasks.handlers(services)
    for module in include or []:
        importlib.import_module(module)
    chosen = [q.strip() for q in (queues or "").split(",") if q.strip()]
    chosen = chosen or default_queues(settings)
    try:
        with runtime.working():
            err.print(f"worker on {settings.device}, {budget.total} CPU thread(s), "
                      f"queues: {', '.join(chosen)}", highlight=False)
            run_worker(services, chosen, loglevel.upper(), handlers)
    finally:
        services.close()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
