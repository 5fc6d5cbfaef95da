"""Admin routes for model pulls: ``/api/v1b/admin/models/{catalogue,pull,pulls,pull_cancel}``.

A pull is a durable ``download`` task (``ronghe.downloads.service``): its progress is in
``task_events`` (for the admin who started it), in ``/admin/queue`` and in ``pulls``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ronghe.api.deps import ServicesDep
from ronghe.api.downloads.protocol import (
    CatalogueItems,
    PullBody,
    PullInfo,
    PullItems,
    PullList,
    PullRef,
)
from ronghe.api.downloads.serving import catalogue_items, emails, pull_info
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.users.admin import ADMIN, Admin
from ronghe.downloads.service import Downloads

router = APIRouter(prefix="/api/v1b/admin/models", tags=["admin"],
                   responses=errors(Family.MIAOHUA, 400, 401, 403, 404, 409, 413))


def _downloads(request: Request) -> Downloads:
    return request.app.state.downloads  # type: ignore[no-any-return]


@router.post("/catalogue", summary="The short names a pull knows, and which are installed",
             responses=errors(Family.MIAOHUA, *ADMIN))
def catalogue(admin: Admin, request: Request) -> MiaohuaOk[CatalogueItems]:
    installed = _downloads(request).installed()
    return miaohua_ok(CatalogueItems(items=catalogue_items(installed)))


@router.post("/pull", summary="Start pulling a model into the models folder (a durable "
             "download task: progress in task_events and /admin/models/pulls)",
             responses=errors(Family.MIAOHUA, *ADMIN, 409, 429))
def pull(body: PullBody, admin: Admin, request: Request) -> MiaohuaOk[PullInfo]:
    task = _downloads(request).submit(
        admin.id, ref=body.ref, revision=body.revision or None, file=body.file or None,
        name=body.name or None, kind=body.kind or None, sha256=body.sha256 or None,
        allow_pickle=body.allow_pickle)
    return miaohua_ok(pull_info(task, admin.email))


@router.post("/pulls", summary="Every admin's pulls, newest first, with their progress",
             responses=errors(Family.MIAOHUA, *ADMIN))
def pulls(body: PullList, admin: Admin, request: Request,
          services: ServicesDep) -> MiaohuaOk[PullItems]:
    tasks = _downloads(request).list(body.limit)
    owners = emails(services, [t.user_id for t in tasks])
    return miaohua_ok(PullItems(items=[pull_info(t, owners.get(t.user_id, ""))
                                       for t in tasks]))


@router.post("/pull_cancel", summary="Stop a pull; its partial files are removed",
             responses=errors(Family.MIAOHUA, *ADMIN, 404))
def pull_cancel(body: PullRef, admin: Admin, request: Request,
                services: ServicesDep) -> MiaohuaOk[PullInfo]:
    task = _downloads(request).cancel(body.task_id)
    return miaohua_ok(pull_info(task, emails(services, [task.user_id]).get(task.user_id, "")))
