"""OpenAI Images: a request becomes an ordinary image task of the caller, through the one
submit path (``ronghe.images.submit``), so it is in their history, counts against their
limits, sends their webhooks and survives a restart.  The request waits for the task and
answers with its images; a client that hangs up does not cancel it.

Edits and variations store the images they carry as the caller's uploads first
(``ronghe.images.inputs``): an edit with a ``mask`` inpaints (OpenAI's mask is transparent
where to paint; the submit path's is white there), one without is image-to-image, as is a
variation.  The submit path names fields in ``task_submit``'s terms; errors are answered in
the names this API uses (``FIELDS``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from fastapi import Request
from fastapi.responses import Response
from PIL import Image

from ronghe.api import waiting
from ronghe.api.chat.serving import CLIENT_GONE
from ronghe.api.chat.streaming import EventStream
from ronghe.api.envelopes import Family, error_body
from ronghe.api.field_names import renamed
from ronghe.api.openai_images.protocol import (
    GenerationRequest,
    ImageData,
    ImagesResponse,
    Options,
    event,
    is_openai_model,
    steps_for,
)
from ronghe.api.waiting import ENDED, ClientGone, still_running, until_ended_or_gone
from ronghe.db.models import User
from ronghe.errors import BadRequest, Conflict, RongheError, UpstreamError
from ronghe.images import inputs, outputs
from ronghe.images import submit as images
from ronghe.images.request import ImageRequest
from ronghe.jobs import Status, TaskView
from ronghe.jobs.store import ERROR_FIELD
from ronghe.services import Services

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 2.0
# An edit without a mask, and a variation: how far from the source (img2img strength).
EDIT_STRENGTH = 0.75
VARIATION_STRENGTH = 0.6
# The submit path's field names -> this API's.
FIELDS = {"model_name": "model", "versionid": "model", "output_size": "size",
          "n_images": "n", "init_img": "image", "mask_img": "mask", "ddim_steps": "quality",
          "select_seed": "seed", "neg_prompt": "negative_prompt"}
GENERATION, EDIT = "image_generation", "image_edit"
# What the answer reports for quality (OpenAI's newer names for the older ones).
REPORTED_QUALITY = {"standard": "medium", "hd": "high"}


@dataclass(frozen=True)
class Plan:
    """A submitted task and how its answer is shaped."""

    task: TaskView
    kind: str
    prompt: str
    fmt: str
    compression: int
    response_format: str
    quality: str
    partials: int

    @property
    def size(self) -> str:
        return f"{self.task.params['width']}x{self.task.params['height']}"


def model_name(options: Options) -> str:
    """The Ronghe model a request names; OpenAI's names and none mean the default ("")."""
    name = (options.model or "").strip()
    return "" if is_openai_model(name) else name


def _plan(task: TaskView, kind: str, prompt: str, options: Options) -> Plan:
    return Plan(task=task, kind=kind, prompt=prompt, fmt=options.output_format or "png",
                compression=100 if options.output_compression is None
                else options.output_compression,
                response_format=options.response_format or "b64_json",
                quality=REPORTED_QUALITY.get(options.quality or "auto",
                                             options.quality or "auto"),
                partials=(options.partial_images or 0) if options.stream else 0)


def _submit(services: Services, user: User, request: ImageRequest) -> TaskView:
    try:
        return images.submit(services, user, request)
    except RongheError as exc:
        raise renamed(exc, FIELDS) from None


def _request(services: Services, user: User, options: Options, prompt: str,
             size: str | None, init_img: str = "", mask_img: str = "",
             strength: float = VARIATION_STRENGTH) -> ImageRequest:
    """The submit path's request for these options; ``size`` None: the model's default;
    ``strength`` matters only with ``init_img``."""
    name = model_name(options)
    try:
        entry, _ = images.resolve_model(services, user, name)
    except RongheError as exc:
        raise renamed(exc, FIELDS) from None
    wanted = (options.size or "auto").strip()
    output_size = wanted if wanted.lower() != "auto" else (size or inputs.default_size(entry))
    seed = -1 if options.seed is None else options.seed
    return ImageRequest(prompt=prompt, n_images=options.n or 1, output_size=output_size,
                        neg_prompt=options.negative_prompt or "", model_name=name,
                        select_seed=seed, init_img=init_img, mask_img=mask_img,
                        strength=strength, output_format=options.output_format or "png",
                        webhook=options.webhook or "",
                        ddim_steps=steps_for(options.quality, entry.default_steps))


def submit_generation(services: Services, user: User, body: GenerationRequest) -> Plan:
    request = _request(services, user, body, body.prompt, None)
    return _plan(_submit(services, user, request), GENERATION, body.prompt, body)


@dataclass(frozen=True)
class Sent:
    """An image part of a multipart request: its field name and bytes."""

    field: str
    data: bytes


def submit_edit(services: Services, user: User, base: str, options: Options, prompt: str,
                image: Sent, mask: Sent | None, strength: float | None,
                kind: str = EDIT) -> Plan:
    """An edit (``kind`` EDIT) or a variation: the first image is the source."""
    source = inputs.receive(services, image.data, image.field)
    mask_file = None
    if mask is not None:
        painted = _paint_mask(inputs.receive(services, mask.data, mask.field), source)
        mask_file = inputs.store_mask(services, user, painted)
    name = model_name(options)
    try:
        entry, _ = images.resolve_model(services, user, name)
    except RongheError as exc:
        raise renamed(exc, FIELDS) from None
    stored = inputs.store(services, user, source)
    if strength is None:
        strength = (1.0 if mask_file is not None
                    else EDIT_STRENGTH if kind == EDIT else VARIATION_STRENGTH)
    request = _request(
        services, user, options, prompt, inputs.source_size(entry, *source.size),
        init_img=services.files.url(stored, base), strength=strength,
        mask_img=services.files.url(mask_file, base) if mask_file is not None else "")
    return _plan(_submit(services, user, request), kind, prompt, options)


def _paint_mask(mask: inputs.Received, source: inputs.Received) -> Image.Image:
    """OpenAI's mask (transparent where the image is to be edited) as the submit path's
    (white where to paint)."""
    if mask.size != source.size:
        raise BadRequest(f"mask: must be the same size as the image ({source.size[0]}x"
                         f"{source.size[1]}), got {mask.size[0]}x{mask.size[1]}", field="mask")
    image = mask.image()
    if "A" not in image.getbands() and "transparency" not in image.info:
        raise BadRequest("mask: must be a PNG with an alpha channel (fully transparent "
                         "where the image is to be edited)", field="mask")
    alpha = image.convert("RGBA").getchannel("A")
    return alpha.point(lambda a: 255 if a == 0 else 0)


# --- answers


def _ended(task: TaskView) -> None:
    """Raise what a task that did not end done means for the client."""
    if task.state is Status.DONE:
        return
    reason = task.error_msg or "no reason given"
    if task.state is Status.CANCELLED:
        raise Conflict(f"the image task {task.id} was cancelled: {reason}")
    field = (task.result or {}).get(ERROR_FIELD)
    if field:
        raise renamed(BadRequest(reason, field=str(field)), FIELDS)
    raise UpstreamError(f"the image task {task.id} failed: {reason}")


def _data(services: Services, task: TaskView, plan: Plan, base: str) -> list[ImageData]:
    out = []
    for picture in outputs.pictures(services, task):
        if plan.response_format == "url":
            info = outputs.exported(services, task, picture, plan.fmt, plan.compression)
            out.append(ImageData(url=services.files.url(info, base),
                                 revised_prompt=plan.prompt))
        else:
            data, meta = outputs.read(services, picture)
            encoded = outputs.encode(data, meta, plan.fmt, plan.compression)
            out.append(ImageData(b64_json=base64.b64encode(encoded).decode("ascii"),
                                 revised_prompt=plan.prompt))
    return out


async def answer(request: Request, services: Services, user: User,
                 plan: Plan) -> ImagesResponse | Response:
    """The task's images once it has ended (``stream`` sends its events instead)."""
    base = str(request.base_url)
    try:
        task = await until_ended_or_gone(request, services, user, plan.task.id)
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    _ended(task)
    data = await anyio.to_thread.run_sync(_data, services, task, plan, base)
    return ImagesResponse(created=int(task.created_at.timestamp()), data=data,
                          background="opaque", output_format=plan.fmt, size=plan.size,
                          **({"quality": plan.quality} if plan.quality != "auto" else {}))


class _NoEngine:
    """EventStream closes an engine stream on disconnect; a task has none (it goes on)."""

    async def aclose(self) -> None:
        return None


def stream(services: Services, user: User, plan: Plan) -> EventStream:
    return EventStream(_events(services, user, plan), _NoEngine())  # type: ignore[arg-type]


def _sse(kind: str, body: dict[str, Any]) -> str:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n"


def _partial(data: bytes, plan: Plan, size: tuple[int, int]) -> str:
    """A live preview (a small JPEG of the first image) at the image's size, in the
    requested format, base64."""
    return base64.b64encode(outputs.plain(data, plan.fmt, size)).decode("ascii")


async def _events(services: Services, user: User, plan: Plan) -> AsyncIterator[str]:
    size = (int(plan.task.params["width"]), int(plan.task.params["height"]))
    deadline = time.monotonic() + waiting.IMAGE_WAIT_SECONDS
    sent, last_preview, beat = 0, 0.0, time.monotonic()
    try:
        while True:
            task = await services.db.run_read(services.tasks.get, plan.task.id, user.id)
            if task.state in ENDED:
                break
            if sent < plan.partials:
                got = await anyio.to_thread.run_sync(outputs.preview, services, task)
                if got is not None and got[1] != last_preview:
                    last_preview = got[1]
                    b64 = await anyio.to_thread.run_sync(_partial, got[0], plan, size)
                    kind = f"{plan.kind}.partial_image"
                    yield _sse(kind, event(kind, b64, plan.fmt, plan.quality, plan.size,
                                           index=sent))
                    sent += 1
            if time.monotonic() > deadline:
                raise still_running(plan.task.id)
            if time.monotonic() - beat > HEARTBEAT_SECONDS:
                beat = time.monotonic()
                yield f": progress {task.progress:.2f}\n\n"  # a comment: proxies see traffic
            await asyncio.sleep(waiting.IMAGE_POLL_SECONDS)
        _ended(task)
        kind = f"{plan.kind}.completed"
        for picture in await anyio.to_thread.run_sync(outputs.pictures, services, task):
            data, meta = await anyio.to_thread.run_sync(outputs.read, services, picture)
            encoded = await anyio.to_thread.run_sync(outputs.encode, data, meta, plan.fmt,
                                                     plan.compression)
            b64 = base64.b64encode(encoded).decode("ascii")
            yield _sse(kind, event(kind, b64, plan.fmt, plan.quality, plan.size))
    except RongheError as exc:
        yield _sse("error", {"type": "error", **error_body(Family.OPENAI, exc.status_code,
                                                           exc.msg, exc.field)})
    except Exception:
        log.exception("image stream failed", task_id=plan.task.id)
        yield _sse("error", {"type": "error", **error_body(
            Family.OPENAI, 500, "internal error; see the server log")})
