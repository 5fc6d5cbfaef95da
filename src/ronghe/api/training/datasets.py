"""Upload and dataset routes: translate HTTP to the upload and dataset services."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.idempotent import IdempotencyKeyHeader, idempotent
from ronghe.api.training.protocol import (
    DatasetCreate,
    DatasetCreated,
    DatasetImages,
    DatasetList,
    DatasetPage,
    DatasetRow,
)
from ronghe.datasets.service import DatasetInfo, DatasetService
from ronghe.errors import BadRequest
from ronghe.services import Services
from ronghe.uploads.service import FIELD, Upload, check_count, split_captions, store_uploads

router = APIRouter(tags=["training"])
DEFAULT_PER_PAGE = 20
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
Files = Annotated[list[UploadFile], File(description="image files (JPEG, PNG, WebP)")]


def _datasets(services: Services) -> DatasetService:
    return services.datasets


SIGNED_IN = (400, 401, 413)
# 409: an Idempotency-Key reused with another body.
SUBMIT = (*SIGNED_IN, 409)


def _upload(request: Request, user: TokenUser, services: Services, parts: list[UploadFile],
            endpoint: str, response: Response, key: str | None) -> dict[str, Any]:
    check_count(len(parts), services.settings)
    limit = services.settings.upload_max_bytes
    # Reading one byte past the limit is enough to know a file is too large; its size
    # (the multipart parser counted it) is what the message reports.
    uploads = [Upload(p.filename or "", p.file.read(limit + 1), _size(p)) for p in parts]
    # "The same body" of a multipart upload: its files' names and contents (the multipart
    # boundary differs on every try).
    content = [[u.filename, hashlib.sha256(u.data).hexdigest()] for u in uploads]

    def work() -> dict[str, Any]:
        images, captions = split_captions(uploads)
        stored = store_uploads(services.files, services.settings, user.id, images)
        if captions:
            services.datasets.set_user_captions({stored[i].id: text
                                                 for i, text in captions.items()})
        base = str(request.base_url)
        return miaohua_ok([services.files.url(i, base) for i in stored]).model_dump(mode="json")

    return idempotent(services, user, key, endpoint, content, response, work)


def _size(part: UploadFile) -> int:
    if part.size is not None:
        return part.size
    position = part.file.tell()
    size = part.file.seek(0, 2)
    part.file.seek(position)
    return size


@router.post("/api/v1b/upload_imgs", summary="Upload images (many files under init_img)",
             response_model=MiaohuaOk[list[str]], responses=errors(Family.MIAOHUA, *SUBMIT))
def upload_imgs(request: Request, user: TokenUser, services: ServicesDep,
                init_img: Files, response: Response,
                key: IdempotencyKeyHeader = None) -> Any:
    return _upload(request, user, services, init_img, "upload_imgs", response, key)


@router.post("/api/v1b/upload_img", summary="Upload one image (init_img)",
             response_model=MiaohuaOk[list[str]], responses=errors(Family.MIAOHUA, *SUBMIT))
def upload_img(request: Request, user: TokenUser, services: ServicesDep,
               init_img: Files, response: Response,
               key: IdempotencyKeyHeader = None) -> Any:
    if len(init_img) != 1:
        raise BadRequest(f"{FIELD}: upload_img takes exactly one file (got {len(init_img)}); "
                         "use upload_imgs for several", field=FIELD)
    return _upload(request, user, services, init_img, "upload_img", response, key)


def describe(info: DatasetInfo, services: Services, base_url: str) -> DatasetRow:
    urls = [services.files.url(i, base_url) for i in info.images]
    return DatasetRow(id=info.id, name=info.name, description=info.description,
                      demo_picture=urls[0] if urls else "",
                      create_time=info.created_at.strftime(TIME_FORMAT),
                      update_time=info.updated_at.strftime(TIME_FORMAT),
                      images=urls, captions=list(info.captions), images_num=len(urls))


@router.post("/api/v1b/dataset", summary="Create a dataset from uploaded images",
             response_model=MiaohuaOk[DatasetCreated],
             responses=errors(Family.MIAOHUA, *SUBMIT))
def create_dataset(body: DatasetCreate, user: TokenUser, services: ServicesDep,
                   response: Response, key: IdempotencyKeyHeader = None) -> Any:
    def work() -> dict[str, Any]:
        info = _datasets(services).create(user.id, body.name, body.description, body.images,
                                          body.captions)
        return miaohua_ok(DatasetCreated(dataset_id=info.id)).model_dump(mode="json")

    return idempotent(services, user, key, "dataset", body, response, work)


@router.post("/api/v1b/dataset_all", summary="Your datasets, a page at a time",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
def dataset_all(request: Request, user: TokenUser, services: ServicesDep,
                body: DatasetPage | None = None,
                page: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
                per_page: Annotated[int | None, Query(ge=1, le=100)] = None) -> DatasetList:
    page = page or (body.page if body else None) or 1
    per_page = per_page or (body.per_page if body else None) or DEFAULT_PER_PAGE
    items, total = _datasets(services).page(user.id, page, per_page)
    pages = -(-total // per_page)
    base = str(request.base_url)
    return DatasetList(items=[describe(i, services, base) for i in items], page=page,
                       per_page=per_page, total=total, has_next=page < pages,
                       has_prev=page > 1, totalPages=pages)


@router.post("/api/v1b/dataset/add_images", summary="Add uploaded images to a dataset",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
def add_images(body: DatasetImages, user: TokenUser, services: ServicesDep) -> MiaohuaOk[str]:
    _datasets(services).add_images(user.id, body.dataset, body.images, body.captions)
    return miaohua_ok("", msg="OK")


@router.post("/api/v1b/dataset/delete_images", summary="Remove images from a dataset",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
def delete_images(body: DatasetImages, user: TokenUser,
                  services: ServicesDep) -> MiaohuaOk[str]:
    _datasets(services).delete_images(user.id, body.dataset, body.images)
    return miaohua_ok("", msg="OK")
