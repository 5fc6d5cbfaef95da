"""Serving stored files at signed URLs, and listing / re-signing one's own files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Body, Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.fields import int_range
from ronghe.errors import Forbidden, NotFound
from ronghe.storage.files import FileInfo

router = APIRouter(tags=["files"])
# Files up to this size (images, previews) are read whole; larger ones (LoRA weights, never
# rewritten in place) are streamed.
WHOLE_BYTES = 8 << 20


def base_url(request: Request) -> str:
    return str(request.base_url)


BINARY = {"schema": {"type": "string", "format": "binary"}}
FILE = {"description": "The file's bytes, with its content type (images; LoRA weights)",
        "content": {"image/*": BINARY, "application/octet-stream": BINARY}}


@router.get("/files/{file_id}", summary="A stored file, at a URL signed by the server",
            response_class=StreamingResponse,
            responses={200: FILE, **errors(Family.PLAIN, 400, 403, 404)})
def get_file(
    file_id: str,
    services: ServicesDep,
    expires: int = Query(alias="Expires", ge=0),
    # URL-safe base64, as UrlSigner writes it: anything else cannot be a signature.
    signature: str = Query(alias="Signature", min_length=1, max_length=128,
                           pattern=r"^[A-Za-z0-9_-]+$"),
) -> Response:
    problem = services.files.signer.verify(file_id, expires, signature)
    if problem:
        raise Forbidden(f"file URL {problem}; ask the API for a fresh URL")
    info = services.files.get(file_id)
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    try:
        if info.size <= WHOLE_BYTES:
            # Read whole, so Content-Length is these bytes' length: a file rewritten in
            # place (a live preview, every second) may have changed since its row was read,
            # and the row's size then mismatched the stream (ERR_CONTENT_LENGTH_MISMATCH).
            data = services.files.storage.get(info.key)
            return Response(data, media_type=info.content_type, headers=headers)
        chunks = services.files.storage.iter_chunks(info.key)
    except FileNotFoundError:
        raise NotFound("file not found") from None
    return StreamingResponse(chunks, media_type=info.content_type,
                             headers={**headers, "Content-Length": str(info.size)})


class FileListRequest(BaseModel):
    page: Annotated[int, int_range(1, 100_000)] = 1
    per_page: Annotated[int, int_range(1, 100)] = 20
    kind: str | None = Field(default=None, max_length=32)


class FileItem(Body):
    file_id: str
    kind: str = Field(description="upload, image (generated), sample …")
    content_type: str
    size: int = Field(description="bytes")
    width: int | None
    height: int | None
    url: str = Field(description="a fresh signed URL")


class FilePage(Body):
    items: list[FileItem]
    page: int
    per_page: int
    total: int
    has_next: bool
    has_prev: bool


def describe(info: FileInfo, url: str) -> FileItem:
    return FileItem(file_id=info.id, kind=info.kind, content_type=info.content_type,
                    size=info.size, width=info.width, height=info.height, url=url)


SIGNED_IN = (400, 401, 413)


@router.post("/api/v1b/files", summary="Your stored files, newest first, with fresh URLs",
             responses=errors(Family.MIAOHUA, *SIGNED_IN))
def list_files(body: FileListRequest, user: TokenUser, services: ServicesDep,
               request: Request) -> MiaohuaOk[FilePage]:
    items, total = services.files.list(user.id, body.kind, (body.page - 1) * body.per_page,
                                       body.per_page)
    base = base_url(request)
    return miaohua_ok(FilePage(
        items=[describe(i, services.files.url(i, base)) for i in items],
        page=body.page, per_page=body.per_page, total=total,
        has_next=body.page * body.per_page < total, has_prev=body.page > 1))


class FileUrlRequest(BaseModel):
    url: str | None = Field(default=None, max_length=4096)
    file_id: str | None = Field(default=None, max_length=64)


@router.post("/api/v1b/file_url", summary="A fresh signed URL for one of your files",
             responses=errors(Family.MIAOHUA, *SIGNED_IN, 404))
def file_url(body: FileUrlRequest, user: TokenUser, services: ServicesDep,
             request: Request) -> MiaohuaOk[FileItem]:
    if body.file_id:
        info = services.files.get(body.file_id, user.id)
    else:
        info = services.files.resolve_url(body.url or "", user.id, "url")
    url = services.files.url(info, base_url(request))
    return miaohua_ok(describe(info, url))
