"""The A1111-compatible API's other services: the caller's progress and interrupt, PNG
info, and extra-single-image as an upscale task (``ronghe.images.upscale``), waited for."""

from __future__ import annotations

import base64
import io
import time

import anyio
from fastapi import Request
from fastapi.responses import Response
from PIL import Image

from ronghe.api.chat.serving import CLIENT_GONE
from ronghe.api.field_names import renamed
from ronghe.api.sdapi.protocol import (
    ExtraSingleImage,
    ExtraSingleImageRequest,
    PngInfo,
    Progress,
    ProgressState,
)
from ronghe.api.sdapi.serving import decode_image, failed
from ronghe.api.waiting import ClientGone, until_ended_or_gone
from ronghe.db.models import User
from ronghe.engines.diffusion import output
from ronghe.errors import BadRequest, Conflict, RongheError, UpstreamError
from ronghe.images import inputs, outputs, pnginfo, upscale
from ronghe.jobs import Status, TaskView
from ronghe.services import Services

UPSCALE_FIELDS = {"upscaler": "upscaler_1", "scale": "upscaling_resize", "init_img": "image"}


def _current(services: Services, user: User) -> tuple[TaskView | None, int]:
    """The caller's running image task (the newest), and how many of theirs have not ended."""
    running = services.tasks.listing(user.id, ["image"], Status.RUNNING, limit=1)
    pending = services.tasks.listing(user.id, ["image"], Status.PENDING, limit=1)
    current = running.tasks[0] if running.tasks else None
    return current, running.total + pending.total


def progress(services: Services, user: User, skip_current_image: bool) -> Progress:
    task, count = _current(services, user)
    detail = (task.detail or {}) if task is not None else {}
    done = task.progress if task is not None else 0.0
    eta = 0.0
    if task is not None and task.started_at is not None and done > 0:
        elapsed = time.time() - task.started_at.timestamp()
        eta = max(0.0, elapsed / done * (1 - done))
    image = None
    if task is not None and not skip_current_image:
        got = outputs.preview(services, task)
        if got is not None:
            image = base64.b64encode(outputs.plain(got[0], "png")).decode("ascii")
    state = ProgressState(
        skipped=False, interrupted=bool(task and task.cancel_requested),
        stopping_generation=False, job=f"task({task.id})" if task else "",
        job_count=count, job_timestamp=(task.created_at.strftime("%Y%m%d%H%M%S")
                                        if task else "0"),
        job_no=0, sampling_step=int(detail.get("step") or 0),
        sampling_steps=int(detail.get("steps") or 0))
    return Progress(progress=round(done, 4), eta_relative=round(eta, 2), state=state,
                    current_image=image, textinfo=str(detail.get("stage") or "") or None,
                    current_task=task.id if task else None)


def interrupt(services: Services, user: User) -> None:
    """Cancel the caller's running image task (it ends at its next step); queued ones go
    on, as A1111's interrupt stops the current job only."""
    task, _ = _current(services, user)
    if task is not None:
        services.tasks.request_cancel(task.id, user.id)


# --- png-info, extras


def png_info(services: Services, text: str) -> PngInfo:
    data = decode_image(text, "image")
    inputs.receive(services, data, "image")  # within the upload limits, a real image
    with Image.open(io.BytesIO(data)) as image:
        parameters = output.image_parameters(image)
        items = {k: v for k, v in image.info.items()
                 if isinstance(v, str) and k not in (output.PNG_PARAMETERS, output.PNG_RONGHE)}
    return PngInfo(info=parameters, items=items, parameters=pnginfo.parse(parameters).parameters)


def upscale_request(services: Services, user: User, base: str,
                    body: ExtraSingleImageRequest) -> TaskView | None:
    """extra-single-image as an upscale task (None: nothing to do, upscaler_1 "None")."""
    if body.resize_mode != 0:
        raise BadRequest("resize_mode: only 0 (scale by upscaling_resize) is available "
                         f"(got {body.resize_mode})", field="resize_mode")
    if body.upscaler_2 not in (None, "", "None") and body.extras_upscaler_2_visibility:
        raise BadRequest("upscaler_2: a second, blended upscaler is not available; send "
                         "'None' or extras_upscaler_2_visibility 0", field="upscaler_2")
    for name in ("gfpgan_visibility", "codeformer_visibility"):
        if getattr(body, name):
            raise BadRequest(f"{name}: face restoration is not available (send 0)",
                             field=name)
    received = inputs.receive(services, decode_image(body.image, "image"), "image")
    if body.upscaler_1 in (None, "", "None"):
        return None
    stored = inputs.store(services, user, received)
    request = upscale.UpscaleRequest(services.files.url(stored, base), body.upscaler_1,
                                     body.upscaling_resize)
    try:
        return upscale.submit_upscale(services, user, request)
    except RongheError as exc:
        raise renamed(exc, UPSCALE_FIELDS) from None


async def extra_single_image(request: Request, services: Services, user: User,
                             body: ExtraSingleImageRequest) -> ExtraSingleImage | Response:
    """The image upscaled (a task of the caller's, waited for); with upscaler_1 "None",
    the image as it is, as A1111 answers it."""
    task = await anyio.to_thread.run_sync(upscale_request, services, user,
                                          str(request.base_url), body)
    if task is None:
        data = decode_image(body.image, "image")
        return ExtraSingleImage(html_info="", image=base64.b64encode(
            await anyio.to_thread.run_sync(outputs.plain, data, "png")).decode("ascii"))
    try:
        ended = await until_ended_or_gone(request, services, user, task.id)
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    return await anyio.to_thread.run_sync(_upscaled, services, ended)


def _upscaled(services: Services, task: TaskView) -> ExtraSingleImage:
    failed(task, UPSCALE_FIELDS)
    if task.state is not Status.DONE:
        raise Conflict(f"the upscale task {task.id} was cancelled: {task.error_msg}")
    found = outputs.pictures(services, task)
    if not found:
        raise UpstreamError(f"the upscale task {task.id} stored no image")
    data, meta = outputs.read(services, found[0])
    return ExtraSingleImage(html_info="", image=base64.b64encode(
        outputs.encode(data, meta, "png")).decode("ascii"))
