"""One submit path for images: a request becomes a checked, typed ``ImageJob`` and a task.

Every front door (``task_submit``, fusion's drawings, and those to come) translates its body
into an ``ImageRequest`` and calls ``submit``.  ``check`` is the one place a request is
checked, as diffusers' ``check_inputs`` is: the model (a base model, or a trained LoRA by
name or versionid), its size range, the ControlNets it has and their processors, the LoRAs
and the uploads.  Everything that can be checked without running the model is checked
here, so a bad request fails at submit with the field named (in ``task_submit``'s names),
and the job is complete: the worker needs nothing but the task row.
"""

from __future__ import annotations

import random
import re

from ronghe.catalog.folder import is_folder_lora
from ronghe.catalog.service import LoraInfo, LoraState, is_id
from ronghe.db.models import User
from ronghe.engines.diffusion import control, prompts, samplers
from ronghe.engines.diffusion.control import annotators
from ronghe.engines.diffusion.families import CONTROLNET, INPAINT
from ronghe.engines.diffusion.infotext import FILLS
from ronghe.engines.diffusion.masking import ORIGINAL, fills
from ronghe.engines.diffusion.outpaint import canvas_size
from ronghe.engines.diffusion.registry import (
    DEFAULT_GUIDANCE,
    ModelEntry,
    ModelRegistry,
)
from ronghe.errors import BadRequest, NotFound, NotReady, UnknownModel, field_error
from ronghe.images.job import (
    CaptionJob,
    Control,
    ImageJob,
    Lora,
    Mask,
    Outpaint,
)
from ronghe.images.request import (
    MAX_CN_UNITS,
    ControlRequest,
    ImageRequest,
    OutpaintRequest,
)
from ronghe.images.upscale import hires_part
from ronghe.jobs import TaskView
from ronghe.queues import Kind, image_queue
from ronghe.services import Services
from ronghe.storage.files import FileInfo
from ronghe.tasks import prompt as add_prompt
from ronghe.webhooks.request import task_webhook

SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX*×]\s*(\d{1,5})\s*$")
# Seeds drawn for select_seed -1, in the range the generation form advertises.
RANDOM_SEED_MAX = 9_999_999
OUTPAINT = "outpaint_config"
# The versionid the vendor's later clients send when their user picked no model: here it
# names the default model, as the first edition's Artist_V0.1.3 does.  It is not listed
# among the choices: no one picks it, clients send it by default.
LATER_DEFAULT_VERSIONID = "sgl_artist_v0.3.5_0925"


# --- the models


def find_model(registry: ModelRegistry, name: str) -> ModelEntry | None:
    """A registry model by name or alias ('' = the default), the later editions' default
    versionid included."""
    entry = registry.find(name)
    if entry is None and name == LATER_DEFAULT_VERSIONID:
        return registry.find("")
    return entry


def lora_for(services: Services, user_id: int, versionid: int | str, field: str) -> LoraInfo:
    """One of the user's ready LoRAs, or a public one by its id."""
    try:
        return services.loras.resolve_version(user_id, versionid, field)
    except BadRequest as own_error:
        if is_id(versionid):
            try:
                info = services.loras.get(int(versionid))
            except NotFound:
                raise own_error from None
            if info.public and info.state == LoraState.READY:
                return info
        raise


def resolve_model(services: Services, user: User,
                  name: str) -> tuple[ModelEntry, list[LoraInfo]]:
    """model_name -> a registry model, or a trained LoRA of the user's (its base + it)."""
    registry = services.image_models
    entry = find_model(registry, name)
    if entry is not None:
        return entry, []
    lora = services.loras.find(user.id, name) if name else None
    if lora is None:
        raise UnknownModel(f"model_name: unknown model {name!r}; available: "
                           + ", ".join(registry.choices()) + " or one of your trained models "
                           "(see /api/v1b/models/private)", field="model_name")
    if lora.state != LoraState.READY:
        raise BadRequest(f"model_name: your model {name!r} is not ready "
                         f"(state {lora.state})", field="model_name")
    if is_folder_lora(lora):  # made for a family: the default model, or the first of it
        family = lora.meta.get("family")
        default = registry.find("")
        fits = [e for e in registry.entries() if e.family == family]
        if default is not None and default.family == family:
            return default, [lora]
        if not fits:
            raise BadRequest(f"model_name: LoRA {name!r} is for {family} models and none is "
                             "served", field="model_name")
        return fits[0], [lora]
    return registry.get(lora.base_model, "model_name"), [lora]


def named_model(services: Services, user: User,
                request: ImageRequest) -> tuple[ModelEntry, list[LoraInfo]]:
    """The model a request names: ``versionid`` (the later editions' field) wins over
    ``model_name``; neither means the default model."""
    if request.versionid == "":
        return resolve_model(services, user, request.model_name)
    registry = services.image_models
    versionid = request.versionid
    entry = find_model(registry, versionid) if isinstance(versionid, str) else None
    if entry is not None:
        return entry, []
    try:
        lora = lora_for(services, user.id, versionid, "versionid")
    except UnknownModel:
        # Neither a base model nor a LoRA; one of the user's that is not ready yet says so.
        raise UnknownModel(f"versionid: unknown model {versionid!r}; use a base model's "
                           "versionid from /api/v1b/models/base ("
                           + ", ".join(registry.choices()) + ") or a LoRA's from "
                           "/api/v1b/models/lora or /models/private",
                           field="versionid") from None
    return registry.get(lora.base_model, "versionid"), [lora]


def model_for(services: Services, user: User, versionid: str) -> ModelEntry:
    """A base model by versionid (its name or an alias; '' = the default), else the base
    of a LoRA: the user's own (id or name) or a public one (id).  For ``cn/list``."""
    registry = services.image_models
    entry = find_model(registry, versionid)
    if entry is not None:
        return entry
    try:
        lora = lora_for(services, user.id, versionid, "versionid")
    except BadRequest:  # it names only LoRAs: say both kinds are valid
        raise UnknownModel(f"versionid: no base model or LoRA {versionid!r}; base models: "
                           + ", ".join(registry.choices()) + " (see /api/v1b/models/base), "
                           "or a LoRA's versionid", field="versionid") from None
    return registry.get(lora.base_model, "versionid")


# --- the parts


def parse_size(text: str, entry: ModelEntry) -> tuple[int, int]:
    lo, hi, step = entry.min_size, entry.max_size, entry.size_step
    allowed = (f"WxH with each side a multiple of {step} from {lo} to {hi} "
               f"for model {entry.name!r}, e.g. 960x960")
    match = SIZE_RE.match(text or "")
    if not match:
        raise field_error("output_size", allowed, text)
    width, height = int(match[1]), int(match[2])
    for side in (width, height):
        if side % step or not lo <= side <= hi:
            raise field_error("output_size", allowed, text)
    return width, height


def image_file(services: Services, user: User, url: str, field: str) -> FileInfo:
    """One of the user's uploads that is an image, by the URL the upload returned."""
    info = services.files.resolve_url(url, user.id, field)
    if not info.content_type.startswith("image/"):
        raise BadRequest(f"{field}: {url[:200]!r} is not an image", field=field)
    return info


def lora_part(entry: ModelEntry, registry: ModelRegistry, lora: LoraInfo, weight: float,
              field: str) -> Lora:
    if is_folder_lora(lora):  # a LoRA file from the folder fits every model of its family
        if lora.meta.get("family") != entry.family:
            raise BadRequest(f"{field}: LoRA {lora.name!r} is for {lora.meta.get('family')} "
                             f"models and cannot be used with {entry.name!r} "
                             f"({entry.family})", field=field)
        return Lora(lora.id, lora.name, weight)
    base = registry.find(lora.base_model)
    if base is None or base.name != entry.name:
        raise BadRequest(f"{field}: model {lora.name!r} was trained on {lora.base_model!r} "
                         f"and cannot be used with {entry.name!r}", field=field)
    return Lora(lora.id, lora.name, weight)


def control_part(services: Services, user: User, entry: ModelEntry, cn: str, url: str,
                 unit: ControlRequest | None, field: str) -> Control:
    """A ControlNet unit: ``unit`` None is the first edition's ``controlnet_model`` (its
    control image is init_img, its settings the defaults)."""
    family = entry.family_info
    if not family.supports(CONTROLNET):
        raise BadRequest(f"{field}: {family.label} models ({entry.name}) take no ControlNet "
                         "here; use a Stable Diffusion model for ControlNet", field=field)
    if cn not in entry.controlnets:
        available = ", ".join(sorted(entry.controlnets)) or "none"
        raise BadRequest(f"{field}: ControlNet {cn!r} is not available for model "
                         f"{entry.name!r}; available: {available}", field=field)
    where = f"{field.rsplit('.', 1)[0]}.img" if unit is not None else "init_img"
    if not url:
        raise BadRequest(f"{where}: a control image is required for ControlNet {cn!r} "
                         "(an image URL returned by upload_imgs)", field=where)
    info = image_file(services, user, url, where)
    processor, annotator_root = processor_of(services, cn, unit, field)
    if unit is None:
        return Control(cn, info.id, processor, annotators=annotator_root)
    return Control(cn, info.id, processor, unit.weight, unit.guidance_start,
                   unit.guidance_end, unit.low_threshold, unit.high_threshold,
                   unit.down_sample_rate, annotator_root)


def processor_of(services: Services, cn: str, unit: ControlRequest | None,
                 field: str) -> tuple[str, str]:
    """The unit's processor (its ControlNet type's default when unnamed), checked against
    the choices of that type, and the annotator folder when it needs weights."""
    cfield = (f"{field.rsplit('.', 1)[0]}.config.control_processor" if unit is not None
              else field)
    named = control.normalise(unit.control_processor) if unit is not None else ""
    processor = named or control.default_processor(cn)
    allowed = control.allowed_processors(cn)
    if processor not in allowed:
        raise field_error(cfield, f"one of {', '.join(allowed)} for ControlNet {cn!r}",
                          processor)
    if processor not in annotators.NEEDS:
        return processor, ""
    root = services.settings.controlnet_annotators_path
    problem = annotators.missing(processor, root)
    if problem:
        raise BadRequest(f"{cfield}: {problem}", field=cfield)
    return processor, root


def outpaint_part(entry: ModelEntry, source: FileInfo,
                  request: OutpaintRequest) -> tuple[Outpaint, int, int]:
    """The job's outpaint part and the canvas size, fixed from the stored upload's size (so
    the job's width and height are the delivered size, as for any job)."""
    if not source.width or not source.height:
        raise BadRequest(f"{OUTPAINT}.src_img: the upload's size is unknown; upload it again",
                         field=f"{OUTPAINT}.src_img")
    width, height = canvas_size(source.width, source.height, request.outpaint_ratio,
                                entry.size_step)
    lo, hi = entry.min_size, entry.max_size
    if not (lo <= width <= hi and lo <= height <= hi):
        raise BadRequest(
            f"{OUTPAINT}.outpaint_ratio: a {source.width}x{source.height} image times "
            f"{request.outpaint_ratio:g} is a {width}x{height} canvas; model {entry.name!r} "
            f"draws sides {lo}-{hi}: use a smaller ratio or another image",
            field=f"{OUTPAINT}.outpaint_ratio")
    part = Outpaint(source.id, request.outpaint_ratio, request.align_position,
                    (source.width, source.height))
    return part, width, height


# --- check and submit


def check(services: Services, user: User, request: ImageRequest) -> ImageJob:
    """The request as a complete job, or the first problem as a typed error naming the field
    (BadRequest, UnknownModel; NotReady for a model or chat engine that cannot work now)."""
    registry = services.image_models
    entry, implied = named_model(services, user, request)
    registry.check(entry)
    outpaint = None
    if request.outpaint_config is not None:
        if request.init_img or request.controlnet_model or request.cn_configs:
            raise BadRequest(f"{OUTPAINT}: cannot be combined with init_img, controlnet_model "
                             "or cn_configs (the source image is outpaint_config.src_img)",
                             field=OUTPAINT)
        source = image_file(services, user, request.outpaint_config.src_img,
                            f"{OUTPAINT}.src_img")
        # The canvas is the delivered size: output_size does not apply.
        outpaint, width, height = outpaint_part(entry, source, request.outpaint_config)
    else:
        width, height = parse_size(request.output_size, entry)
    controls: list[Control] = []
    if request.controlnet_model:
        controls.append(control_part(services, user, entry, request.controlnet_model,
                                     request.init_img, None, "controlnet_model"))
    for i, unit in enumerate(request.cn_configs):
        # A unit without its own image uses init_img as its control image.
        controls.append(control_part(services, user, entry, unit.cn,
                                     unit.img or request.init_img, unit,
                                     f"cn_configs[{i}].cn"))
    if len(controls) > MAX_CN_UNITS:
        raise field_error("cn_configs", f"at most {MAX_CN_UNITS} ControlNet units, "
                          "controlnet_model included", len(controls))
    init_used_as_control = (request.controlnet_model
                            or any(not u.img for u in request.cn_configs))
    init_file_id = None
    if request.init_img and not init_used_as_control:
        init_file_id = image_file(services, user, request.init_img, "init_img").id
    mask = mask_part(services, user, entry, request, init_file_id, controls)
    hires = hires_part(services, entry, request, width, height,
                       paints_over=bool(init_file_id or mask or outpaint))
    # The sampler a family takes, and the prompt syntax it reads (a 400 naming the field).
    sampler_name, scheduler = samplers.check(
        entry.family, entry.name, request.sampler_name, request.scheduler,
        paints_over=bool(init_file_id or mask or outpaint or hires))
    prompts.check(request.prompt, "prompt", entry.family)
    prompts.check(request.neg_prompt, "neg_prompt", entry.family)
    named = "versionid" if request.versionid != "" else "model_name"
    loras = [lora_part(entry, registry, lora, 1.0, named) for lora in implied]
    for i, wanted in enumerate(request.lora_configs):
        field = f"lora_configs[{i}].versionid"
        info = lora_for(services, user.id, wanted.versionid, field)
        loras.append(lora_part(entry, registry, info, wanted.merge_weight, field))
    if len({x.id for x in loras}) != len(loras):
        raise BadRequest("lora_configs: the same model is listed twice", field="lora_configs")
    if request.add_prompt:
        add_prompt.check_available(services.chat)
    hook = task_webhook(services, user.id, request.webhook, request.callback_url,
                        list(request.webhook_events_filter)
                        if request.webhook_events_filter is not None else None)
    task_type = ("outpaint" if outpaint else "controlnet" if controls
                 else "inpaint" if mask else "img2img" if init_file_id else "txt2img")
    scale = request.scale if request.scale is not None else (entry.recommended_guidance
                                                            or DEFAULT_GUIDANCE)
    seed = (request.select_seed if request.select_seed >= 0
            else random.randint(0, RANDOM_SEED_MAX))
    return ImageJob(
        model=entry.name, model_name=request.model_name, prompt=request.prompt,
        neg_prompt=request.neg_prompt, n_images=request.n_images, scale=scale, seed=seed,
        width=width, height=height, steps=request.ddim_steps or entry.default_steps,
        # Outpainting paints the new area from noise: the whole schedule runs.
        strength=1.0 if outpaint else request.strength,
        init_file_id=init_file_id, controls=tuple(controls), loras=tuple(loras),
        add_prompt=request.add_prompt, task_type=task_type, outpaint=outpaint, mask=mask,
        versionid=request.versionid, webhook=hook, output_format=request.output_format,
        hires=hires, sampler_name=sampler_name, scheduler=scheduler)


# The mask's options: what each defaults to with a mask (A1111's img2img defaults, except
# inpainting_fill: original, the image as it is, which A1111's UI starts with too).
MASK_OPTIONS = {"mask_blur": 4, "inpainting_mask_invert": False, "inpaint_full_res": False,
                "inpaint_full_res_padding": 32, "inpainting_fill": ORIGINAL}


def mask_part(services: Services, user: User, entry: ModelEntry, request: ImageRequest,
              init_file_id: str | None, controls: list[Control]) -> Mask | None:
    sent = {name: getattr(request, name) for name in MASK_OPTIONS
            if getattr(request, name) is not None}
    if not request.mask_img:
        if sent:
            name = next(iter(sent))
            raise BadRequest(f"{name}: applies to inpainting only; send mask_img (and "
                             "init_img) with it", field=name)
        return None
    if init_file_id is None:
        raise BadRequest("mask_img: needs init_img, the image it paints over (not used as a "
                         "control image)", field="mask_img")
    if controls:
        raise BadRequest("mask_img: cannot be combined with ControlNet units "
                         "(controlnet_model, cn_configs)", field="mask_img")
    if not entry.family_info.supports(INPAINT):
        raise BadRequest(f"mask_img: {entry.family_info.label} models ({entry.name}) take no "
                         "inpainting here", field="mask_img")
    options = {**MASK_OPTIONS, **sent}
    fill = options["inpainting_fill"]
    if fill not in fills(entry.family_info.is_sd):
        raise BadRequest(f"inpainting_fill: {fill} ({FILLS[fill]}) applies to Stable "
                         f"Diffusion UNets; {entry.family_info.label} models ({entry.name}) "
                         "take 0 (fill) or 1 (original)", field="inpainting_fill")
    return Mask(image_file(services, user, request.mask_img, "mask_img").id,
                blur=options["mask_blur"], invert=options["inpainting_mask_invert"],
                only_masked=options["inpaint_full_res"],
                padding=options["inpaint_full_res_padding"], fill=fill)


def submit(services: Services, user: User, request: ImageRequest) -> TaskView:
    """Check the request, store its job as a task on its model's queue, and dispatch it."""
    job = check(services, user, request)
    entry = services.image_models.get(job.model)
    task = services.tasks.create(user.id, Kind.IMAGE.value, entry.queue, job.to_params())
    assert services.dispatcher is not None  # the app sets it before serving
    services.dispatcher.submit(task)
    if services.image_metrics is not None:
        services.image_metrics.submitted.labels(entry.name, job.task_type).inc()
    return task


def submit_caption(services: Services, user: User, url: str) -> TaskView:
    """img2txt: caption one of the user's uploads, as a task on the default model's queue."""
    if services.captioner is None:
        raise NotReady("img2txt: no captioner is configured (captioner_model)")
    if not url:
        raise BadRequest("init_img: the URL of an image you uploaded (upload_img) is required",
                         field="init_img")
    info = image_file(services, user, url, "init_img")
    registry = services.image_models
    entry = registry.get(registry.default_name)
    # The default model's queue: every image worker serves it, so the caption runs beside
    # (between) image tasks on the same CPU budget.
    task = services.tasks.create(user.id, Kind.CAPTION.value, image_queue(entry.family),
                                 CaptionJob(info.id).to_params())
    assert services.dispatcher is not None  # the app sets it before serving
    services.dispatcher.submit(task)
    return task
