"""Miaohua image routes: parse, call the service, return its envelope (no logic here).

Routes are sync unless noted: FastAPI runs them in its threadpool, so database work never
blocks the event loop, and pollers stay fast while a generation runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ronghe.api.deps import (
    OptionalTokenUser,
    RequestToken,
    ServicesDep,
    TokenUser,
    token_user,
)
from ronghe.api.idempotent import IdempotencyKeyHeader, idempotent
from ronghe.api.images import forms, listing, serving
from ronghe.api.images.protocol import (
    ModelListRequest,
    TaskCancelRequest,
    TaskListRequest,
    TaskResultRequest,
    TaskResultsRequest,
    TaskSubmitRequest,
)
from ronghe.services import Services

router = APIRouter(prefix="/api/v1b", tags=["images"])


def _base(request: Request) -> str:
    return str(request.base_url)


@router.post("/task_submit", summary="Submit an image generation task")
def task_submit(body: TaskSubmitRequest, user: TokenUser, services: ServicesDep,
                response: Response, key: IdempotencyKeyHeader = None) -> Any:
    return idempotent(services, user, key, "task_submit", body, response,
                      lambda: serving.submit(services, user, body))


def _task_result(services: Services, token: str, task_id: str, base: str) -> Any:
    user = token_user(token, services)
    return serving.task_body(services, services.tasks.get(task_id, user.id), base)


def _task_results(services: Services, token: str, task_ids: list[str], base: str) -> Any:
    return serving.results_body(services, token_user(token, services), task_ids, base)


# The polling endpoints are async and resolve the token themselves: a poll is a few
# indexed reads, cheaper than the threadpool hops a sync route and dependency would cost
# (see Database.run_read).
@router.post("/task_result", summary="State, progress and images of one task")
async def task_result(body: TaskResultRequest, token: RequestToken, services: ServicesDep,
                      request: Request) -> Any:
    return await services.db.run_read(_task_result, services, token, body.task_id,
                                      _base(request))


@router.post("/task_results", summary="State and images of up to 50 tasks")
async def task_results(body: TaskResultsRequest, token: RequestToken, services: ServicesDep,
                       request: Request) -> Any:
    return await services.db.run_read(_task_results, services, token, body.task_ids,
                                      _base(request))


@router.post("/task_list", summary="Your tasks, newest first, a page at a time")
def task_list(body: TaskListRequest, user: TokenUser, services: ServicesDep,
              request: Request) -> Any:
    return listing.task_list(services, user, body, _base(request))


@router.post("/task_cancel", summary="Cancel a pending or running task")
def task_cancel(body: TaskCancelRequest, user: TokenUser, services: ServicesDep) -> Any:
    return serving.cancel(services, user, body.task_id)


@router.get("/get_generation_form", summary="The fields of task_submit and their choices")
def get_generation_form(services: ServicesDep, user: OptionalTokenUser) -> Any:
    return forms.generation_form(services, user)


@router.post("/models/base", summary="Base image models")
def models_base(body: ModelListRequest, services: ServicesDep) -> Any:
    return forms.base_models(services.image_models, body.page, body.per_page, body.query)


@router.post("/models/lora", summary="Public LoRA models")
def models_lora(body: ModelListRequest, services: ServicesDep, request: Request) -> Any:
    return forms.public_loras(services, body.page, body.per_page, body.query, _base(request))


@router.post("/models/private", summary="Your own trained or uploaded models")
def models_private(body: ModelListRequest, user: TokenUser, services: ServicesDep,
                   request: Request) -> Any:
    return forms.private_models(services, user, body.page, body.per_page, body.query,
                                _base(request))


@router.post("/cn/artist", summary="ControlNets of the house model")
def cn_artist(services: ServicesDep) -> Any:
    return forms.artist_controlnets(services.image_models)


@router.post("/cn/opensource", summary="ControlNets of every configured model")
def cn_opensource(services: ServicesDep) -> Any:
    return forms.opensource_controlnets(services.image_models)
