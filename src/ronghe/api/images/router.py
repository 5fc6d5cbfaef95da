"""Miaohua image routes: parse, call the service, return its envelope (no logic here).

Routes are sync unless noted: FastAPI runs them in its threadpool, so database work never
blocks the event loop, and pollers stay fast while a generation runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ronghe.api.deps import (
    OptionalTokenUser,
    RequestToken,
    ServicesDep,
    TokenUser,
    token_user,
)
from ronghe.api.envelopes import Family, MiaohuaOk, errors
from ronghe.api.idempotent import IdempotencyKeyHeader, idempotent
from ronghe.api.images import controlnets, forms, listing, serving
from ronghe.api.images.cn_protocol import CnListRequest, CnListRow
from ronghe.api.images.listing_protocol import TaskPage
from ronghe.api.images.protocol import (
    BaseModelRow,
    ControlNetRow,
    FormField,
    LoraRow,
    ModelListRequest,
    ModelPage,
    TaskCancelRequest,
    TaskListRequest,
    TaskResultRequest,
    TaskResultsRequest,
    TaskSubmitRequest,
)
from ronghe.api.images.result_protocol import (
    TaskCancelled,
    TaskResult,
    TaskResults,
    TaskSubmitted,
)
from ronghe.services import Services

router = APIRouter(prefix="/api/v1b", tags=["images"])
# Every POST can be malformed or too large; token routes can be unauthorised.
BODY = (400, 413)
SIGNED_IN = (*BODY, 401)


def _base(request: Request) -> str:
    return str(request.base_url)


# 409: an Idempotency-Key reused with another body; 429: the per-user limits on submits;
# 503: the model is loading or broken, or the queue full.
@router.post("/task_submit", summary="Submit an image generation task",
             response_model=TaskSubmitted,
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 409, 429, 503))
def task_submit(body: TaskSubmitRequest, user: TokenUser, services: ServicesDep,
                response: Response, key: IdempotencyKeyHeader = None) -> Any:
    return idempotent(services, user, key, "task_submit", body, response,
                      lambda: serving.submit(services, user, body).model_dump(mode="json"))


def _task_result(services: Services, token: str, task_id: str, base: str) -> TaskResult:
    user = token_user(token, services)
    return serving.task_result(services, services.tasks.get(task_id, user.id), base)


def _task_results(services: Services, token: str, task_ids: list[str],
                  base: str) -> TaskResults:
    return serving.task_results(services, token_user(token, services), task_ids, base)


# The polling endpoints are async and resolve the token themselves: a poll is a few
# indexed reads, cheaper than the threadpool hops a sync route and dependency would cost
# (see Database.run_read).  The models they return are the response_model's own class, so
# FastAPI serializes them in pydantic's core without validating them again.
@router.post("/task_result", summary="State, progress and images of one task",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
async def task_result(body: TaskResultRequest, token: RequestToken, services: ServicesDep,
                      request: Request) -> TaskResult:
    return await services.db.run_read(_task_result, services, token, body.task_id,
                                      _base(request))


@router.post("/task_results", summary="State and images of up to 50 tasks",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
async def task_results(body: TaskResultsRequest, token: RequestToken, services: ServicesDep,
                       request: Request) -> TaskResults:
    return await services.db.run_read(_task_results, services, token, body.task_ids,
                                      _base(request))


@router.post("/task_list", summary="Your tasks, newest first, a page at a time",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
def task_list(body: TaskListRequest, user: TokenUser, services: ServicesDep,
              request: Request) -> TaskPage:
    return listing.task_list(services, user, body, _base(request))


@router.post("/task_cancel", summary="Cancel a pending or running task",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
def task_cancel(body: TaskCancelRequest, user: TokenUser,
                services: ServicesDep) -> MiaohuaOk[TaskCancelled]:
    return serving.cancel(services, user, body.task_id)


@router.get("/get_generation_form", summary="The fields of task_submit and their choices",
            responses=errors(Family.MIAOHUA, 401))
def get_generation_form(services: ServicesDep,
                        user: OptionalTokenUser) -> MiaohuaOk[list[FormField]]:
    return forms.generation_form(services, user)


@router.post("/models/base", summary="Base image models", responses=errors(Family.MIAOHUA, *BODY))
def models_base(body: ModelListRequest,
                services: ServicesDep) -> MiaohuaOk[ModelPage[BaseModelRow]]:
    return forms.base_models(services.image_models, body.page, body.per_page, body.query)


@router.post("/models/lora", summary="Public LoRA models", responses=errors(Family.MIAOHUA, *BODY))
def models_lora(body: ModelListRequest, services: ServicesDep,
                request: Request) -> MiaohuaOk[ModelPage[LoraRow]]:
    return forms.public_loras(services, body.page, body.per_page, body.query, _base(request))


@router.post("/models/private", summary="Your own trained or uploaded models",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
def models_private(body: ModelListRequest, user: TokenUser, services: ServicesDep,
                   request: Request) -> MiaohuaOk[ModelPage[LoraRow]]:
    return forms.private_models(services, user, body.page, body.per_page, body.query,
                                _base(request))


@router.post("/cn/artist", summary="ControlNets of the house model",
             responses=errors(Family.MIAOHUA, 413))
def cn_artist(services: ServicesDep) -> MiaohuaOk[list[ControlNetRow]]:
    return forms.artist_controlnets(services.image_models)


@router.post("/cn/opensource", summary="ControlNets of every configured model",
             responses=errors(Family.MIAOHUA, 413))
def cn_opensource(services: ServicesDep) -> MiaohuaOk[list[ControlNetRow]]:
    return forms.opensource_controlnets(services.image_models)


# Documented as GET, called with a POST body: both.  GET takes token and versionid from the
# query string (or the token from Authorization).
@router.post("/cn/list", summary="ControlNets usable with a model (base or LoRA versionid)",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
def cn_list(body: CnListRequest, user: TokenUser,
            services: ServicesDep) -> MiaohuaOk[list[CnListRow]]:
    return controlnets.cn_list(services, user, body.versionid)


@router.get("/cn/list", summary="ControlNets usable with a model (query string)",
            responses=errors(Family.MIAOHUA, 400, 401))
def cn_list_get(user: OptionalTokenUser, services: ServicesDep,
                versionid: Annotated[str, Query(max_length=256)] = "",
                token: Annotated[str, Query(max_length=512)] = ""
                ) -> MiaohuaOk[list[CnListRow]]:
    # ``token`` is read by OptionalTokenUser (header or query); declared for the docs.
    if user is None:
        user = token_user("", services)  # raises the usual 401
    return controlnets.cn_list(services, user, versionid.strip())
