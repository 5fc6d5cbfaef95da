"""Upscalers for the image domain: which ones a user may name, the hires fix's part of an
image job, and the standalone upscale task (``POST /api/v1b/upscale``).

The names are A1111's: the built-in ``Lanczos`` and ``Nearest`` (and, in the hires fix
only, the ``Latent`` variants), or the name of a model file in ``<models>/upscalers/``
(``engines/diffusion/upscalers.py``).  As everywhere in ``ronghe.images``, a request is
checked here completely, so a bad one fails at submit naming its field, and the worker
needs nothing but the task row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ronghe.db.models import User
from ronghe.engines.diffusion import upscalers
from ronghe.engines.diffusion.pipelines import IMG2IMG
from ronghe.engines.diffusion.registry import ModelEntry
from ronghe.engines.diffusion.upscale import (
    BUILT_IN,
    LATENT_MODES,
    RESAMPLERS,
    built_in,
    is_latent,
    latent_applies,
    scaled,
)
from ronghe.errors import BadRequest
from ronghe.images.job import Hires, UpscaleJob
from ronghe.images.request import ImageRequest
from ronghe.jobs import TaskView
from ronghe.queues import Kind, image_queue
from ronghe.services import Services

# The upscale task's largest side: its JPEG and the pictures in memory stay reasonable.
MAX_SIDE = 8192
DEFAULT_UPSCALER = "Lanczos"


@dataclass(frozen=True)
class UpscalerChoice:
    """One upscaler a user may name: built in, or a model of the upscalers folder."""

    name: str
    kind: str  # latent | resampler | model
    architecture: str = ""
    scale: int | None = None
    problem: str | None = None


def models_folder(services: Services) -> Path:
    return upscalers.folder(services.settings.models_path)


def model_files(services: Services) -> list[upscalers.Upscaler]:
    return upscalers.scan(models_folder(services), BUILT_IN)


def choices(services: Services) -> list[UpscalerChoice]:
    """Every upscaler, built-in ones first, then the folder's models (with their problem)."""
    found = [UpscalerChoice(n, "latent") for n in LATENT_MODES]
    found += [UpscalerChoice(n, "resampler") for n in RESAMPLERS]
    found += [UpscalerChoice(u.name, "model", u.architecture, u.scale, u.problem)
              for u in model_files(services)]
    return found


def hires_choices(entry: ModelEntry, models: list[str]) -> list[str]:
    """The hr_upscaler values a model takes (``models``: the usable model files' names);
    [] for a model with no image-to-image pipeline (no hires fix)."""
    family = entry.family_info
    if not family.supports(IMG2IMG):
        return []
    return [*(LATENT_MODES if latent_applies(family) else ()), *RESAMPLERS, *models]


def resolve(services: Services, name: str, field: str, latent: bool) -> str:
    """The upscaler ``name`` stands for (its own spelling), or a 400 naming ``field``;
    ``latent``: whether the Latent variants may be named here."""
    own = built_in(name)
    if own is not None and (latent or not is_latent(own)):
        return own
    usable = [u for u in model_files(services) if u.problem is None]
    if own is not None:
        raise BadRequest(f"{field}: {own!r} upscales latents, which only the hires fix has; "
                         "use " + _listed(False, usable), field=field)
    wanted = name.strip().lower()
    for model in model_files(services):
        if model.name.lower() == wanted:
            if model.problem is not None:
                raise BadRequest(f"{field}: upscaler {model.name!r} cannot be used: "
                                 f"{model.problem}", field=field)
            return model.name
    raise BadRequest(f"{field}: unknown upscaler {name[:128]!r}; use "
                     + _listed(latent, usable), field=field)


def _listed(latent: bool, models: list[upscalers.Upscaler]) -> str:
    names = [*(LATENT_MODES if latent else ()), *RESAMPLERS, *(m.name for m in models)]
    return "one of " + ", ".join(names)


def model_path(services: Services, name: str) -> Path | None:
    """The file of an upscaler model by its name; None for a built-in upscaler."""
    if built_in(name) is not None:
        return None
    found = upscalers.find(models_folder(services), name, BUILT_IN)
    if found is None:
        raise BadRequest(f"upscaler {name!r} is no longer in the upscalers folder")
    return found.path


# --- the hires fix's part of an image job


def hires_part(services: Services, entry: ModelEntry, request: ImageRequest, width: int,
               height: int, paints_over: bool) -> Hires | None:
    """``enable_hr`` and its ``hr_`` fields as the job's ``Hires``, checked; None without
    enable_hr (the hr_ fields are then ignored, as A1111 does).  ``paints_over``: the job
    starts from a picture (init_img, mask_img, outpaint_config), which the hires fix does
    not apply to."""
    if not request.enable_hr:
        return None
    family = entry.family_info
    if paints_over:
        raise BadRequest("enable_hr: the hires fix applies to text-to-image (and ControlNet "
                         "units), not to init_img, mask_img or outpaint_config",
                         field="enable_hr")
    if not family.supports(IMG2IMG):
        raise BadRequest(f"enable_hr: model {entry.name!r} ({family.label}) has no "
                         "image-to-image pipeline for the second pass", field="enable_hr")
    upscaler = resolve(services, request.hr_upscaler, "hr_upscaler", latent=True)
    if is_latent(upscaler) and not latent_applies(family):
        raise BadRequest(f"hr_upscaler: {upscaler!r} works for SD 1.5, SD 2.x and SDXL "
                         f"models; for {entry.name!r} ({family.label}) use Lanczos, Nearest "
                         "or an upscaler model", field="hr_upscaler")
    out_w, out_h = scaled(width, height, request.hr_scale, entry.size_step)
    if max(out_w, out_h) > entry.max_size:
        raise BadRequest(f"hr_scale: {width}x{height} times {request.hr_scale:g} is "
                         f"{out_w}x{out_h}; model {entry.name!r} draws sides up to "
                         f"{entry.max_size}: use a smaller hr_scale or output_size",
                         field="hr_scale")
    return Hires(request.hr_scale, upscaler, request.hr_second_pass_steps,
                 request.hr_denoising_strength)


# --- the upscale task


@dataclass(frozen=True)
class UpscaleRequest:
    """``POST /api/v1b/upscale``: one of the user's images (an upload or an output, by the
    URL the API gave) made ``scale`` times larger.  The scale's range is the front door's."""

    init_img: str
    upscaler: str = DEFAULT_UPSCALER
    scale: float = 2.0


def check_upscale(services: Services, user: User, request: UpscaleRequest) -> UpscaleJob:
    from ronghe.images.submit import image_file

    if not request.init_img:
        raise BadRequest("init_img: the URL of one of your images (an upload or a generated "
                         "image) is required", field="init_img")
    source = image_file(services, user, request.init_img, "init_img")
    if not source.width or not source.height:
        raise BadRequest("init_img: the image's size is unknown; upload it again",
                         field="init_img")
    upscaler = resolve(services, request.upscaler, "upscaler", latent=False)
    width, height = (max(1, round(side * request.scale)) for side in (source.width,
                                                                         source.height))
    limit = services.settings.upload_max_pixels
    if max(width, height) > MAX_SIDE or width * height > limit:
        raise BadRequest(f"scale: a {source.width}x{source.height} image times "
                         f"{request.scale:g} is {width}x{height}; the largest is {MAX_SIDE} "
                         f"pixels a side and {limit:,} in all", field="scale")
    return UpscaleJob(source.id, upscaler, request.scale, (source.width, source.height),
                      width, height)


def submit_upscale(services: Services, user: User, request: UpscaleRequest) -> TaskView:
    """Check the request and queue its task where image workers take it (the default
    model's queue, as captions), under the same CPU budget and per-user limits."""
    job = check_upscale(services, user, request)
    registry = services.image_models
    entry = registry.get(registry.default_name)
    task = services.tasks.create(user.id, Kind.UPSCALE.value, image_queue(entry.family),
                                 job.to_params())
    assert services.dispatcher is not None  # the app sets it before serving
    services.dispatcher.submit(task)
    return task
