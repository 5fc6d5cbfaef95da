"""``POST /api/v1b/upscale`` (Ronghe's own): one of your images made larger, as a task.

``{token, init_img, upscaler, scale}``: ``init_img`` is the URL of an upload or of a
generated image (task_result's ``large``), ``upscaler`` Lanczos, Nearest or an upscaler
model's name (``GET /api/v1b/upscalers``), ``scale`` 1-4.  It answers ``{task_id}`` as
task_submit does; the task is durable like every task (a restart or a lost worker runs it
again), and task_result, task_events, webhooks and task_list show it with its one image.
Translation only: ``ronghe.images.upscale`` checks the request and queues the task.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.fields import number_range, text
from ronghe.api.idempotent import IdempotencyKeyHeader, idempotent
from ronghe.api.images.protocol import Lenient, UpscalerRow
from ronghe.api.images.result_protocol import SubmittedInfo, TaskSubmitted
from ronghe.images import upscale

router = APIRouter(prefix="/api/v1b", tags=["images"])


class UpscaleBody(Lenient):
    init_img: Annotated[str, text(4096)] = ""
    # Lanczos, Nearest or an upscaler model's name (the Latent ones need the hires fix).
    upscaler: Annotated[str, text(128)] = upscale.DEFAULT_UPSCALER
    scale: Annotated[float, number_range(1, 4)] = 2.0

    def to_request(self) -> upscale.UpscaleRequest:
        return upscale.UpscaleRequest(self.init_img.strip(), self.upscaler, self.scale)


# 429: the per-user limits on submits; 503: the queue is full.
@router.post("/upscale", summary="Upscale one of your images (a task)",
             response_model=TaskSubmitted,
             responses=errors(Family.MIAOHUA, 400, 401, 409, 413, 429, 503))
def upscale_image(body: UpscaleBody, user: TokenUser, services: ServicesDep,
                  response: Response, key: IdempotencyKeyHeader = None) -> Any:
    def run() -> dict[str, Any]:
        task = upscale.submit_upscale(services, user, body.to_request())
        return TaskSubmitted(task_id=task.id,
                             info=SubmittedInfo(task_id=task.id)).model_dump(mode="json")

    return idempotent(services, user, key, "upscale", body, response, run)


@router.get("/upscalers", summary="The upscalers: built-in ones and the models folder's",
            responses=errors(Family.MIAOHUA, 401))
def upscalers(user: TokenUser, services: ServicesDep) -> MiaohuaOk[list[UpscalerRow]]:
    """hr_upscaler's and upscale's choices: the Latent ones (hires fix only), Lanczos,
    Nearest, then each file of ``<models>/upscalers`` with its architecture and scale, or
    its problem."""
    return miaohua_ok([UpscalerRow(name=u.name, kind=u.kind, architecture=u.architecture,
                                   scale=u.scale, problem=u.problem)
                       for u in upscale.choices(services)])
