"""``POST /api/v1b/img2txt``: the caption of one of your uploaded images (later edition).

The vendor answers synchronously, ``{code: 0, info: "<caption>", msg: ""}``.  Here the
caption is a task of kind ``caption`` on the image queue: the image worker runs it under
the CPU budget, it counts against the user's task limits (429 beyond them), and this async
route only polls the task table while it waits, so the event loop never runs the model.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.fields import text
from ronghe.api.images.protocol import Lenient
from ronghe.api.waiting import until_ended
from ronghe.db.models import User
from ronghe.errors import BadRequest, Timeout, UpstreamError
from ronghe.images.submit import submit_caption
from ronghe.jobs import Status
from ronghe.jobs.store import ERROR_FIELD
from ronghe.services import Services

router = APIRouter(prefix="/api/v1b", tags=["images"])
POLL_SECONDS = 0.1
WAIT_SECONDS = 300.0


class Img2TxtRequest(Lenient):
    init_img: Annotated[str, text(4096)] = ""


async def _wait(services: Services, user: User, task_id: str) -> str:
    task = await until_ended(services, user, task_id, WAIT_SECONDS, POLL_SECONDS)
    if task is None:
        raise Timeout(f"img2txt: no caption after {WAIT_SECONDS:g} s (task {task_id})")
    if task.state is Status.DONE:
        return str((task.result or {}).get("caption", ""))
    reason = task.error_msg or "no reason given"
    if (task.result or {}).get(ERROR_FIELD) == "init_img":
        raise BadRequest(reason, field="init_img")
    raise UpstreamError(f"img2txt: captioning failed (task {task.id}): {reason}")


@router.post("/img2txt", summary="Caption one of your uploaded images",
             responses=errors(Family.MIAOHUA, 400, 401, 413, 429, 502, 503, 504))
async def img2txt(body: Img2TxtRequest, user: TokenUser,
                  services: ServicesDep) -> MiaohuaOk[str]:
    """``init_img``: a URL upload_img/upload_imgs returned; answers its caption in ``info``."""
    task = await anyio.to_thread.run_sync(submit_caption, services, user,
                                          body.init_img.strip())
    caption = await _wait(services, user, task.id)
    return miaohua_ok(caption)


def answer(services: Any, task: Any, base_url: str) -> dict[str, Any]:
    """What task_events and webhooks send for a caption task."""
    return {"task_id": task.id, "state": task.state.value, "error_msg": task.error_msg,
            "caption": (task.result or {}).get("caption", "")}
