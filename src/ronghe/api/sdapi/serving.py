"""The A1111-compatible API's services: a txt2img/img2img body becomes an ordinary image task
of the caller through the one submit path (``ronghe.images.submit``), so it is in their
history, counts against their limits, sends their webhooks and survives a restart.  The
request waits for it and answers A1111's ``{images, parameters, info}``.

The model is the request's ``override_settings.sd_model_checkpoint``, else the caller's
own choice.  The catalog and the options are in ``models``; progress, interrupt, PNG info
and extra-single-image in ``extras``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response
from PIL import Image

from ronghe import __version__
from ronghe.api.chat.serving import CLIENT_GONE
from ronghe.api.field_names import renamed
from ronghe.api.sdapi.models import AUTOMATIC, checkpoint_name, chosen_model, model_hash
from ronghe.api.sdapi.protocol import (
    MAX_IMAGES,
    OFF,
    OFF_HIRES,
    OFF_SETTINGS,
    ImageResult,
    Img2ImgRequest,
    Processing,
    Txt2ImgRequest,
)
from ronghe.api.waiting import ClientGone, until_ended_or_gone
from ronghe.db.models import User
from ronghe.engines.diffusion import infotext, output, samplers
from ronghe.errors import BadRequest, RongheError, UpstreamError
from ronghe.images import inputs, outputs, pnginfo
from ronghe.images import submit as images
from ronghe.images.job import ImageJob
from ronghe.images.request import ImageRequest, LoraRequest
from ronghe.jobs import Status, TaskView
from ronghe.jobs.store import ERROR_FIELD
from ronghe.services import Services

# The submit path's field names -> A1111's.
FIELDS = {"model_name": "override_settings.sd_model_checkpoint", "output_size": "width",
          "n_images": "batch_size", "init_img": "init_images[0]", "mask_img": "mask",
          "ddim_steps": "steps", "scale": "cfg_scale", "select_seed": "seed",
          "neg_prompt": "negative_prompt", "strength": "denoising_strength",
          "hr_denoising_strength": "denoising_strength", "lora_configs": "prompt"}
# <lora:name:weight> tags per prompt, as task_submit's lora_configs allows.
MAX_LORA_TAGS = 5
# A1111's schedule type names (what /schedulers lists as ``name``) -> their labels, which
# the submit path takes.
SCHEDULE_NAMES = {label.lower().replace(" ", "_"): label for label in samplers.SCHEDULES}
# A1111's default second-pass denoising of the hires fix (its txt2img denoising_strength).
HIRES_DENOISE = 0.75

# --- txt2img and img2img


def refuse_unsupported(body: Processing) -> None:
    """A field Ronghe does not have is fine at its off value; otherwise a 400 naming it."""
    values = body.model_dump()
    checks = dict(OFF)
    if isinstance(body, Txt2ImgRequest) and body.enable_hr:
        checks.update(OFF_HIRES)
        values["hr_prompt_same"] = body.hr_prompt in ("", body.prompt)
        values["hr_negative_prompt_same"] = body.hr_negative_prompt in ("",
                                                                        body.negative_prompt)
        for name, same in (("hr_prompt", "hr_prompt_same"),
                           ("hr_negative_prompt", "hr_negative_prompt_same")):
            if not values[same]:
                raise BadRequest(f"{name}: the second pass uses the first pass's prompts; "
                                 "send \"\" or the same text", field=name)
    for name, (is_off, what) in checks.items():
        if name in values and not is_off(values[name]):
            raise BadRequest(f"{name}: {what} (got {values[name]!r})", field=name)
    for name, value in body.override_settings.items():
        check = OFF_SETTINGS.get(name)
        if check is not None and not check[0](value):
            raise BadRequest(f"override_settings.{name}: {check[1]} (got {value!r})",
                             field=f"override_settings.{name}")
    if body.batch_size * body.n_iter > MAX_IMAGES:
        raise BadRequest(f"n_iter: batch_size x n_iter must be at most {MAX_IMAGES} images "
                         f"per request (got {body.batch_size} x {body.n_iter})",
                         field="n_iter")


def decode_image(text: str, field: str) -> bytes:
    """A1111's base64 image (plain, or a data: URL) -> bytes."""
    text = text.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if text.startswith(("http://", "https://")):
        raise BadRequest(f"{field}: must be base64 image data (URLs are not fetched)",
                         field=field)
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field}: must be base64 image data (PNG, JPEG or WebP)",
                         field=field) from None


def _mask(received: inputs.Received, size: tuple[int, int]) -> Image.Image:
    """A1111's mask reading: the alpha channel when the mask has a transparent part, else its
    brightness; resized to the image it paints over."""
    image = received.image()
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        mask = (alpha.point(lambda a: 255 if a > 128 else 0)
                if alpha.getextrema() != (255, 255) else image.convert("L"))
    else:
        mask = image.convert("L")
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.NEAREST)
    return mask


def _size(services: Services, user: User, model: str, body: Processing) -> str:
    """width x height, each rounded down to the model's size step as A1111 rounds it to its
    latent grid, and within the model's range."""
    try:
        entry, _ = images.resolve_model(services, user, model)
    except RongheError as exc:
        raise renamed(exc, FIELDS) from None
    sides = []
    for field, value in (("width", body.width), ("height", body.height)):
        side = value - value % entry.size_step
        if not entry.min_size <= side <= entry.max_size:
            raise BadRequest(f"{field}: must be {entry.min_size}-{entry.max_size} for model "
                             f"{entry.name!r} (got {value})", field=field)
        sides.append(side)
    return f"{sides[0]}x{sides[1]}"


def image_request(services: Services, user: User, base: str, body: Processing) -> ImageRequest:
    """The body in the submit path's terms (storing img2img's images as the caller's
    uploads)."""
    refuse_unsupported(body)
    requested = body.override_settings.get("sd_model_checkpoint")
    if requested is not None and not isinstance(requested, str):
        raise BadRequest("override_settings.sd_model_checkpoint: must be a model's title "
                         "from /sdapi/v1/sd-models",
                         field="override_settings.sd_model_checkpoint")
    model = (checkpoint_name(requested) if requested and requested.strip()
             else chosen_model(services, user))
    size = _size(services, user, model, body)
    # txt2img's strength is never read (there is no init image).
    fields: dict[str, Any] = {"strength": 0.75, **_sampler(body)}
    if isinstance(body, Img2ImgRequest):
        fields.update(_img2img(services, user, base, body))
    elif body.enable_hr:
        fields.update(enable_hr=True, hr_scale=body.hr_scale,
                      hr_upscaler=body.hr_upscaler or "Latent",
                      hr_second_pass_steps=body.hr_second_pass_steps,
                      hr_denoising_strength=(HIRES_DENOISE if body.denoising_strength is None
                                             else body.denoising_strength))
    prompt, tags = body.prompt, []
    if not body.disable_extra_networks:  # A1111's LoRA syntax, <lora:name:weight>
        prompt, tags = infotext.split_loras(body.prompt)
    if len(tags) > MAX_LORA_TAGS:
        raise BadRequest(f"prompt: at most {MAX_LORA_TAGS} <lora:…> tags (got {len(tags)})",
                         field="prompt")
    fields["lora_configs"] = tuple(LoraRequest(t["versionid"], t["merge_weight"])
                                   for t in tags)
    # PNG, what A1111 answers: the stored files are sent as they are.
    return ImageRequest(prompt=prompt, n_images=body.batch_size * body.n_iter,
                        output_size=size, neg_prompt=body.negative_prompt, model_name=model,
                        scale=body.cfg_scale, select_seed=body.seed, ddim_steps=body.steps,
                        output_format="png", webhook=body.webhook, **fields)


def _sampler(body: Processing) -> dict[str, str]:
    """sampler_name (or A1111's older sampler_index, when sent) and the schedule type by
    its label; none named: the model's own scheduler, as the submit path has it."""
    name = body.sampler_name
    if name is None and "sampler_index" in body.model_fields_set:
        name = body.sampler_index
    if (name or "").strip() in ("Automatic", "Default"):
        name = ""
    schedule = (body.scheduler or "").strip()
    return {"sampler_name": name or "",
            "scheduler": SCHEDULE_NAMES.get(schedule.lower(), schedule)}


def _img2img(services: Services, user: User, base: str, body: Img2ImgRequest) -> dict[str, Any]:
    field = "init_images[0]"
    source = inputs.receive(services, decode_image(body.init_images[0], field), field)
    stored = inputs.store(services, user, source)
    fields: dict[str, Any] = {"init_img": services.files.url(stored, base),
                              "strength": body.denoising_strength}
    if body.mask:
        received = inputs.receive(services, decode_image(body.mask, "mask"), "mask")
        mask = inputs.store_mask(services, user, _mask(received, source.size))
        if body.mask_blur is None and body.mask_blur_x != body.mask_blur_y:
            raise BadRequest("mask_blur_x: one blur for both directions is available; send "
                             "mask_blur (or equal mask_blur_x and mask_blur_y)",
                             field="mask_blur_x")
        fields.update(mask_img=services.files.url(mask, base),
                      mask_blur=body.mask_blur if body.mask_blur is not None
                      else body.mask_blur_x,
                      inpainting_mask_invert=bool(body.inpainting_mask_invert),
                      inpaint_full_res=body.inpaint_full_res,
                      inpaint_full_res_padding=body.inpaint_full_res_padding,
                      inpainting_fill=body.inpainting_fill)
    return fields


def submit(services: Services, user: User, base: str, body: Processing) -> TaskView:
    request = image_request(services, user, base, body)
    try:
        return images.submit(services, user, request)
    except RongheError as exc:
        raise renamed(exc, FIELDS) from None


async def draw(request: Request, services: Services, user: User,
               body: Processing) -> ImageResult | Response:
    """txt2img and img2img: submit (off the event loop), wait, answer."""
    task = await anyio.to_thread.run_sync(submit, services, user, str(request.base_url), body)
    try:
        ended = await until_ended_or_gone(request, services, user, task.id)
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    return await anyio.to_thread.run_sync(result, services, ended, body)


def result(services: Services, task: TaskView, body: Processing) -> ImageResult:
    """A1111's answer: base64 PNGs, the request as taken, and ``info`` as a JSON string.
    An interrupted (cancelled) task answers no images, as A1111 answers what it has."""
    failed(task)
    pngs, texts = [], []
    for picture in outputs.pictures(services, task):
        data, meta = outputs.read(services, picture)
        texts.append(output.read_parameters(data))
        if body.send_images:
            pngs.append(base64.b64encode(outputs.encode(data, meta, "png")).decode("ascii"))
    parameters = body.model_dump(mode="json")
    for heavy in ("init_images", "mask", "firstpass_image", "latent_mask"):
        if heavy in parameters:
            parameters[heavy] = None
    return ImageResult(images=pngs, parameters=parameters,
                       info=json.dumps(info(task, body, texts), ensure_ascii=False))


def failed(task: TaskView, fields: dict[str, str] = FIELDS) -> None:
    """A failed task's error: a 400 naming the field it is about, else a 502."""
    if task.state is not Status.FAILED:
        return
    reason = task.error_msg or "no reason given"
    field = (task.result or {}).get(ERROR_FIELD)
    if field:
        raise renamed(BadRequest(reason, field=str(field)), fields)
    raise UpstreamError(f"the {task.kind} task {task.id} failed: {reason}")


def info(task: TaskView, body: Processing, texts: list[str]) -> dict[str, Any]:
    """A1111's ``info`` (its ``Processed.js()``): what was drawn, per image and in all."""
    job = ImageJob.from_params(task.params)
    seeds = [job.seed + i for i in range(job.n_images)]
    prompt = str((task.result or {}).get("prompt", job.prompt))
    model = job.model
    return {
        "prompt": prompt, "all_prompts": [prompt] * len(seeds),
        "negative_prompt": job.neg_prompt,
        "all_negative_prompts": [job.neg_prompt] * len(seeds),
        "seed": job.seed, "all_seeds": seeds, "subseed": -1, "all_subseeds": [-1] * len(seeds),
        "subseed_strength": 0, "width": job.width, "height": job.height,
        "sampler_name": _recorded(texts, "Sampler") or AUTOMATIC, "cfg_scale": job.scale,
        "steps": job.steps,
        "batch_size": body.batch_size, "restore_faces": False,
        "face_restoration_model": None, "sd_model_name": model,
        "sd_model_hash": model_hash(model)[:10], "sd_vae_name": None, "sd_vae_hash": None,
        "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": job.strength if job.init_file_id else None,
        "extra_generation_params": {}, "index_of_first_image": 0, "infotexts": texts,
        "styles": [], "job_timestamp": task.created_at.strftime("%Y%m%d%H%M%S"),
        "clip_skip": 1, "is_using_inpainting_conditioning": False,
        "version": f"Ronghe {__version__}", "interrupted": task.state is Status.CANCELLED,
        "task_id": task.id,
    }


def _recorded(texts: list[str], label: str) -> str | None:
    """What the first image's infotext says under ``label`` (the sampler that ran)."""
    return pnginfo.parse(texts[0]).parameters.get(label) if texts else None
