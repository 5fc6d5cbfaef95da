"""Image task services: validate -> create the task -> dispatch; and the result envelopes.

Everything that can be checked without running the model is checked here, so a bad request
fails at submit with the field named, and the stored params are complete and normalised:
the worker (in-process or Celery) needs nothing but the task row.
"""

from __future__ import annotations

import random
import re
from typing import Any

from ronghe.api.envelopes import MiaohuaOk, miaohua_ok
from ronghe.api.images.outpaint import FIELD as OUTPAINT
from ronghe.api.images.outpaint import outpaint_params
from ronghe.api.images.protocol import (
    MAX_CN_UNITS,
    CnConfig,
    CnProcessorConfig,
    LoraConfig,
    TaskSubmitRequest,
)
from ronghe.api.images.result_protocol import (
    BatchTask,
    MissingTask,
    SubmittedInfo,
    TaskCancelled,
    TaskResult,
    TaskResults,
    TaskSubmitted,
)
from ronghe.catalog.folder import is_folder_lora
from ronghe.catalog.service import LoraInfo, LoraState, is_id
from ronghe.db.models import User
from ronghe.engines.diffusion import control
from ronghe.engines.diffusion.control import annotators
from ronghe.engines.diffusion.registry import (
    DEFAULT_GUIDANCE,
    SIZE_STEP,
    ModelEntry,
    ModelRegistry,
)
from ronghe.errors import BadRequest, NotFound, field_error
from ronghe.jobs import Status, TaskView
from ronghe.jobs.previews import preview_url
from ronghe.queues import Kind
from ronghe.services import Services
from ronghe.storage.files import FileInfo
from ronghe.tasks import prompt as add_prompt
from ronghe.webhooks.request import PARAM as WEBHOOK
from ronghe.webhooks.request import task_webhook

SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX*×]\s*(\d{1,5})\s*$")
# Seeds drawn for select_seed -1, in the range the generation form advertises.
RANDOM_SEED_MAX = 9_999_999


def parse_size(text: str, entry: ModelEntry) -> tuple[int, int]:
    lo, hi = entry.min_size, entry.max_size
    allowed = (f"WxH with each side a multiple of {SIZE_STEP} from {lo} to {hi} "
               f"for model {entry.name!r}, e.g. 960x960")
    match = SIZE_RE.match(text or "")
    if not match:
        raise field_error("output_size", allowed, text)
    width, height = int(match[1]), int(match[2])
    for side in (width, height):
        if side % SIZE_STEP or not lo <= side <= hi:
            raise field_error("output_size", allowed, text)
    return width, height


def lora_for(services: Services, user_id: int, versionid: Any, field: str) -> LoraInfo:
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
    entry = registry.find(name)
    if entry is not None:
        return entry, []
    lora = services.loras.find(user.id, name) if name else None
    if lora is None:
        raise BadRequest(f"model_name: unknown model {name!r}; available: "
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
                body: TaskSubmitRequest) -> tuple[ModelEntry, list[LoraInfo]]:
    """The model a submit names: ``versionid`` (the later editions' field) wins over
    ``model_name``; neither means the default model."""
    if body.versionid == "":
        return resolve_model(services, user, body.model_name)
    registry = services.image_models
    entry = registry.find(body.versionid) if isinstance(body.versionid, str) else None
    if entry is not None:
        return entry, []
    try:
        lora = lora_for(services, user.id, body.versionid, "versionid")
    except BadRequest as exc:
        if "no model of yours" not in exc.msg:
            raise  # one of the user's, not ready yet
        raise BadRequest(f"versionid: unknown model {body.versionid!r}; use a base model's "
                         "versionid from /api/v1b/models/base (" + ", ".join(registry.choices())
                         + ") or a LoRA's from /api/v1b/models/lora or /models/private",
                         field="versionid") from None
    return registry.get(lora.base_model, "versionid"), [lora]


def lora_params(entry: ModelEntry, registry: ModelRegistry, lora: LoraInfo, weight: float,
                field: str) -> dict[str, Any]:
    if is_folder_lora(lora):  # a LoRA file from the folder fits every model of its family
        if lora.meta.get("family") != entry.family:
            raise BadRequest(f"{field}: LoRA {lora.name!r} is for {lora.meta.get('family')} "
                             f"models and cannot be used with {entry.name!r} "
                             f"({entry.family})", field=field)
        return {"id": lora.id, "name": lora.name, "weight": weight}
    base = registry.find(lora.base_model)
    if base is None or base.name != entry.name:
        raise BadRequest(f"{field}: model {lora.name!r} was trained on {lora.base_model!r} "
                         f"and cannot be used with {entry.name!r}", field=field)
    return {"id": lora.id, "name": lora.name, "weight": weight}


def control_params(services: Services, user: User, entry: ModelEntry, cn: str, url: str,
                   unit: CnConfig | None, field: str) -> dict[str, Any]:
    if cn not in entry.controlnets:
        available = ", ".join(sorted(entry.controlnets)) or "none"
        raise BadRequest(f"{field}: ControlNet {cn!r} is not available for model "
                         f"{entry.name!r}; available: {available}", field=field)
    where = f"{field.rsplit('.', 1)[0]}.img" if unit is not None else "init_img"
    if not url:
        raise BadRequest(f"{where}: a control image is required for ControlNet {cn!r} "
                         "(an image URL returned by upload_imgs)", field=where)
    info = image_file(services, user, url, where)
    config = unit.config if unit is not None else None
    processor, annotator_root = processor_params(services, cn, config, field)
    return {"cn": cn, "file_id": info.id, "processor": processor,
            "weight": unit.weight if unit else 1.0,
            "start": unit.guidance_start if unit else 0.0,
            "end": unit.guidance_end if unit else 1.0,
            "low": config.low_threshold if config else 100,
            "high": config.high_threshold if config else 200,
            "rate": config.down_sample_rate if config else 1,
            "annotators": annotator_root}


def processor_params(services: Services, cn: str, config: CnProcessorConfig | None,
                     field: str) -> tuple[str, str]:
    """The unit's processor (its ControlNet type's default when unnamed), checked against
    the choices of that type, and the annotator folder when it needs weights."""
    cfield = (f"{field.rsplit('.', 1)[0]}.config.control_processor" if config is not None
              else field)
    named = control.normalise(config.control_processor) if config else ""
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


def image_file(services: Services, user: User, url: str, field: str) -> Any:
    info = services.files.resolve_url(url, user.id, field)
    if not info.content_type.startswith("image/"):
        raise BadRequest(f"{field}: {url[:200]!r} is not an image", field=field)
    return info


def build_params(services: Services, user: User, body: TaskSubmitRequest) -> dict[str, Any]:
    registry = services.image_models
    entry, implied = named_model(services, user, body)
    registry.check(entry)
    outpaint = None
    if body.outpaint_config is not None:
        if body.init_img or body.controlnet_model or body.cn_configs:
            raise BadRequest(f"{OUTPAINT}: cannot be combined with init_img, controlnet_model "
                             "or cn_configs (the source image is outpaint_config.src_img)",
                             field=OUTPAINT)
        source = image_file(services, user, body.outpaint_config.src_img,
                            f"{OUTPAINT}.src_img")
        # The canvas is the delivered size: output_size does not apply.
        outpaint, width, height = outpaint_params(entry, source, body.outpaint_config)
    else:
        width, height = parse_size(body.output_size, entry)
    controls: list[dict[str, Any]] = []
    if body.controlnet_model:
        controls.append(control_params(services, user, entry, body.controlnet_model,
                                       body.init_img, None, "controlnet_model"))
    for i, unit in enumerate(body.cn_configs):
        # A unit without its own image uses init_img as its control image.
        controls.append(control_params(services, user, entry, unit.cn,
                                       unit.img or body.init_img, unit, f"cn_configs[{i}].cn"))
    if len(controls) > MAX_CN_UNITS:
        raise field_error("cn_configs", f"at most {MAX_CN_UNITS} ControlNet units, "
                          "controlnet_model included", len(controls))
    init_used_as_control = body.controlnet_model or any(not u.img for u in body.cn_configs)
    init_file_id = None
    if body.init_img and not init_used_as_control:
        init_file_id = image_file(services, user, body.init_img, "init_img").id
    named = "versionid" if body.versionid != "" else "model_name"
    loras = [lora_params(entry, registry, lora, 1.0, named) for lora in implied]
    for i, unit in enumerate(body.lora_configs):
        loras.append(lora_from_config(services, user, entry, unit, i))
    if len({x["id"] for x in loras}) != len(loras):
        raise BadRequest("lora_configs: the same model is listed twice", field="lora_configs")
    if body.add_prompt:
        add_prompt.check_available(services.chat)
    task_type = ("outpaint" if outpaint else "controlnet" if controls
                 else "img2img" if init_file_id else "txt2img")
    scale = body.scale if body.scale is not None else (entry.recommended_guidance
                                                      or DEFAULT_GUIDANCE)
    seed = body.select_seed if body.select_seed >= 0 else random.randint(0, RANDOM_SEED_MAX)
    return {
        "model": entry.name, "model_name": body.model_name, "prompt": body.prompt,
        "neg_prompt": body.neg_prompt, "n_images": body.n_images, "scale": scale,
        "seed": seed, "width": width, "height": height,
        "steps": body.ddim_steps or entry.default_steps,
        # Outpainting paints the new area from noise: the whole schedule runs.
        "strength": 1.0 if outpaint else body.strength,
        "init_file_id": init_file_id, "controls": controls, "loras": loras,
        "add_prompt": body.add_prompt, "task_type": task_type, "outpaint": outpaint,
        "versionid": body.versionid,
    }


def lora_from_config(services: Services, user: User, entry: ModelEntry,
                     unit: LoraConfig, index: int) -> dict[str, Any]:
    field = f"lora_configs[{index}].versionid"
    info = lora_for(services, user.id, unit.versionid, field)
    return lora_params(entry, services.image_models, info, unit.merge_weight, field)


def submit(services: Services, user: User, body: TaskSubmitRequest) -> TaskSubmitted:
    params = build_params(services, user, body)
    hook = task_webhook(services, user.id, body.webhook, body.callback_url,
                        body.webhook_events_filter)
    if hook is not None:
        params[WEBHOOK] = hook
    entry = services.image_models.get(params["model"])
    task = services.tasks.create(user.id, Kind.IMAGE.value, entry.queue, params)
    assert services.dispatcher is not None  # the app sets it before serving
    services.dispatcher.submit(task)
    if services.image_metrics is not None:
        services.image_metrics.submitted.labels(entry.name, params["task_type"]).inc()
    return TaskSubmitted(task_id=task.id, info=SubmittedInfo(task_id=task.id))


# --- results: the poll path, so one batched file lookup per request and models built by
# pydantic's core straight from plain values


def file_ids(task: TaskView) -> list[str]:
    if task.state is not Status.DONE or not task.result:
        return []
    return [item[v] for item in task.result.get("images", [])
            for v in ("large", "middle", "small")]


def image_urls(services: Services, task: TaskView, base_url: str,
               files: dict[str, FileInfo] | None = None) -> list[dict[str, Any]]:
    if task.state is not Status.DONE or not task.result:
        return []
    if files is None:
        files = services.files.get_many(file_ids(task), task.user_id)
    out = []
    for item in task.result.get("images", []):
        entry: dict[str, Any] = {}
        for variant in ("large", "middle", "small"):
            info = files.get(item[variant])
            # An image the user deleted since has no URL any more.
            entry[variant] = services.files.url(info, base_url) if info else ""
        entry.update(save_index=item["save_index"], seed=item.get("seed"),
                     width=item.get("width"), height=item.get("height"))
        out.append(entry)
    return out


def result_fields(services: Services, task: TaskView, base_url: str,
                  live: bool = True) -> dict[str, Any]:
    """``live=False`` leaves out wait_time and preview, which task_list's items do not carry:
    wait_time is a count of the tasks ahead, one read per pending task of a page."""
    result = task.result or {}
    fields = {
        "task_id": task.id, "state": task.state,
        "error_msg": task.error_msg if task.state is not Status.DONE else "",
        "progress": round(task.progress, 4),
        "seed": result.get("seed", task.params.get("seed")),
        "prompt": result.get("prompt", task.params.get("prompt")),
        # add_prompt: false when the chat model added nothing (the prompt was used as sent).
        "prompt_added": bool(result.get("prompt_added", False)),
        "task_type": task.params.get("task_type", ""),
        # The vendor's later names: select_seed for seed; wait_time = tasks ahead.
        "select_seed": result.get("seed", task.params.get("seed")),
    }
    if live:
        fields["wait_time"] = services.tasks.wait_time(task)
        fields["preview"] = preview_url(services, task, base_url)
    return fields


def task_result(services: Services, task: TaskView, base_url: str) -> TaskResult:
    """task_result's answer: ``{state, images, error_msg, progress}`` plus what was used,
    and the vendor's later fields again under ``info``."""
    images = image_urls(services, task, base_url)
    fields = result_fields(services, task, base_url)
    info = {k: fields[k] for k in ("task_id", "state", "error_msg", "progress", "select_seed")}
    return TaskResult(images=images, info={**info, "images": images}, **fields)


def task_answer(services: Services, task: TaskView, base_url: str) -> dict[str, Any]:
    """task_result's answer as JSON data, for task_events and webhooks (flat: the
    envelope's copy under ``info`` would only double the payload)."""
    return task_result(services, task, base_url).model_dump(
        mode="json", exclude={"code", "msg", "info"})


def task_results(services: Services, user: User, task_ids: list[str],
                 base_url: str) -> TaskResults:
    found = services.tasks.get_many(task_ids, user.id)
    files = services.files.get_many([f for t in found.values() for f in file_ids(t)],
                                    user.id)
    info: list[BatchTask | MissingTask] = []
    for task_id in task_ids:
        task = found.get(task_id)
        if task is None:
            info.append(MissingTask(task_id=task_id))
            continue
        fields = result_fields(services, task, base_url)
        # Each image says which task it belongs to: clients flatten the batch's images.
        images = [{**image, "task_id": task.id, "task_type": fields["task_type"]}
                  for image in image_urls(services, task, base_url, files)]
        info.append(BatchTask(images=images, **fields))
    return TaskResults(info=info)


def cancel(services: Services, user: User, task_id: str) -> MiaohuaOk[TaskCancelled]:
    task = services.tasks.request_cancel(task_id, user.id)
    return miaohua_ok(TaskCancelled(task_id=task.id, state=task.state,
                                    cancel_requested=task.cancel_requested))
