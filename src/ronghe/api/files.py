"""Serving stored files at signed URLs, and listing / re-signing one's own files."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.errors import Forbidden, NotFound
from ronghe.storage.files import FileInfo

router = APIRouter(tags=["files"])


def base_url(request: Request) -> str:
    return str(request.base_url)


@router.get("/files/{file_id}", summary="A stored file, at a URL signed by the server")
def get_file(
    file_id: str,
    services: ServicesDep,
    expires: int = Query(alias="Expires", ge=0),
    signature: str = Query(alias="Signature", min_length=1, max_length=128),
) -> StreamingResponse:
    problem = services.files.signer.verify(file_id, expires, signature)
    if problem:
        raise Forbidden(f"file URL {problem}; ask the API for a fresh URL")
    info = services.files.get(file_id)
    try:
        chunks = services.files.storage.iter_chunks(info.key)
    except FileNotFoundError:
        raise NotFound("file not found") from None
    return StreamingResponse(
        chunks,
        media_type=info.content_type,
        headers={"Cache-Control": "private, max-age=3600", "Content-Length": str(info.size),
                 "X-Content-Type-Options": "nosniff"},
    )


class FileListRequest(BaseModel):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)
    kind: str | None = Field(default=None, max_length=32)


def describe(info: FileInfo, url: str) -> dict[str, object]:
    return {"file_id": info.id, "kind": info.kind, "content_type": info.content_type,
            "size": info.size, "width": info.width, "height": info.height, "url": url}


@router.post("/api/v1b/files", summary="Your stored files, newest first, with fresh URLs")
def list_files(body: FileListRequest, user: TokenUser, services: ServicesDep,
               request: Request) -> dict[str, object]:
    items, total = services.files.list(user.id, body.kind, (body.page - 1) * body.per_page,
                                       body.per_page)
    base = base_url(request)
    return {"code": 0, "msg": "", "info": {
        "items": [describe(i, services.files.url(i, base)) for i in items],
        "page": body.page, "per_page": body.per_page, "total": total,
        "has_next": body.page * body.per_page < total, "has_prev": body.page > 1}}


class FileUrlRequest(BaseModel):
    url: str | None = Field(default=None, max_length=4096)
    file_id: str | None = Field(default=None, max_length=64)


@router.post("/api/v1b/file_url", summary="A fresh signed URL for one of your files")
def file_url(body: FileUrlRequest, user: TokenUser, services: ServicesDep,
             request: Request) -> dict[str, object]:
    if body.file_id:
        info = services.files.get(body.file_id, user.id)
    else:
        info = services.files.resolve_url(body.url or "", user.id, "url")
    url = services.files.url(info, base_url(request))
    return {"code": 0, "msg": "", "info": describe(info, url)}
