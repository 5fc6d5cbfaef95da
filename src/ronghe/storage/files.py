"""Stored files: owned rows in the database, bytes in a ``Storage`` backend, signed URLs out.

Every caller (uploads, generated images, training samples) goes through ``FileService``, so
ownership, key naming and URL signing are decided in one place whatever the backend is.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Row, bindparam, func, select

from ronghe.db import Database
from ronghe.db.base import utcnow
from ronghe.db.models import StoredFile
from ronghe.errors import BadRequest, NotFound
from ronghe.storage.base import Storage
from ronghe.storage.signing import UrlSigner

FILE_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Built once: polling runs it on every request.
_BY_IDS = select(StoredFile.__table__).where(StoredFile.id.in_(bindparam("ids", expanding=True)))
FILES_PATH = "/files/"


@dataclass(frozen=True)
class FileInfo:
    id: str
    user_id: int
    key: str
    kind: str
    content_type: str
    size: int
    width: int | None
    height: int | None

    @classmethod
    def of(cls, row: StoredFile | Row) -> FileInfo:
        return cls(row.id, row.user_id, row.key, row.kind, row.content_type, row.size,
                   row.width, row.height)


class FileService:
    def __init__(self, db: Database, storage: Storage, signer: UrlSigner, ttl_seconds: int,
                 public_base_url: str | None = None) -> None:
        self.db = db
        self.storage = storage
        self.signer = signer
        self.ttl = ttl_seconds
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def save(self, user_id: int, data: bytes, content_type: str, kind: str,
             width: int | None = None, height: int | None = None,
             file_id: str | None = None) -> FileInfo:
        """Bytes first, row second: a crash leaves at worst an orphan object, never a row
        pointing at nothing.  ``file_id`` lets a retried job overwrite its own output; an
        overwrite counts as new (``created_at`` is when these bytes were stored), which is
        what a sweep of files nobody writes any more (live previews) goes by."""
        if not KIND_RE.match(kind):
            raise ValueError(f"invalid file kind {kind!r}")
        file_id = file_id or str(uuid.uuid4())
        ext = mimetypes.guess_extension(content_type) or ".bin"
        key = f"u{user_id}/{kind}/{file_id}{ext}"
        self.storage.put(key, data, content_type)
        row = StoredFile(id=file_id, user_id=user_id, key=key, kind=kind,
                         content_type=content_type, size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), width=width, height=height,
                         created_at=utcnow())
        with self.db.session() as s:
            s.merge(row)
        return FileInfo.of(row)

    def get(self, file_id: str, user_id: int | None = None) -> FileInfo:
        """The file, if it exists and (when ``user_id`` is given) belongs to that user."""
        if not FILE_ID_RE.match(file_id):
            raise NotFound("file not found")
        with self.db.session() as s:
            row = s.get(StoredFile, file_id)
            if row is None or (user_id is not None and row.user_id != user_id):
                raise NotFound("file not found")
            return FileInfo.of(row)

    def get_many(self, file_ids: list[str], user_id: int | None = None) -> dict[str, FileInfo]:
        """Files by id in one query (a batch poll names up to 50 x 8 x 3); with ``user_id``,
        only that user's. Ids that match nothing are left out."""
        if not file_ids:
            return {}
        with self.db.reading() as c:
            rows = c.execute(_BY_IDS, {"ids": file_ids})
            return {row.id: FileInfo.of(row) for row in rows
                    if user_id is None or row.user_id == user_id}

    def written_before(self, kind: str, before: datetime, limit: int = 100) -> list[FileInfo]:
        """Any user's files of ``kind`` last written before ``before``, oldest first."""
        q = (select(StoredFile.__table__)
             .where(StoredFile.kind == kind, StoredFile.created_at < before)
             .order_by(StoredFile.created_at).limit(limit))
        with self.db.reading() as c:
            return [FileInfo.of(row) for row in c.execute(q)]

    def list(self, user_id: int, kind: str | None = None, offset: int = 0,
             limit: int = 20) -> tuple[list[FileInfo], int]:
        with self.db.session() as s:
            q = select(StoredFile).where(StoredFile.user_id == user_id)
            if kind:
                q = q.where(StoredFile.kind == kind)
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = s.scalars(q.order_by(StoredFile.created_at.desc(), StoredFile.id)
                             .offset(offset).limit(limit))
            return [FileInfo.of(r) for r in rows], total

    def delete(self, file_id: str, user_id: int) -> None:
        info = self.get(file_id, user_id)
        with self.db.session() as s:
            row = s.get(StoredFile, info.id)
            if row is not None:
                s.delete(row)
        self.storage.delete(info.key)

    def read(self, info: FileInfo) -> bytes:
        return self.storage.get(info.key)

    def url(self, info: FileInfo, base_url: str, ttl_seconds: int | None = None) -> str:
        """A signed, expiring URL: the backend's own presigned URL when it has one."""
        ttl = ttl_seconds or self.ttl
        presigned = self.storage.presigned_url(info.key, ttl, info.content_type)
        if presigned:
            return presigned
        expires, sig = self.signer.sign(info.id, ttl)
        base = self.public_base_url or base_url.rstrip("/")
        return f"{base}{FILES_PATH}{info.id}?{urlencode({'Expires': expires, 'Signature': sig})}"

    def resolve_url(self, url: str, user_id: int, field: str) -> FileInfo:
        """A Ronghe file URL the client sent back (init_img, dataset images) -> the file.

        Only the file id is taken from the URL, and only the owner may use it; the URL is
        never fetched, so no request can be pointed at another host (SSRF)."""
        if not isinstance(url, str) or not url or len(url) > 4096:
            raise BadRequest(f"{field} must be an image URL returned by upload_imgs", field=field)
        parts = urlsplit(url.strip())
        last = parts.path.rstrip("/").rsplit("/", 1)[-1]
        file_id = last.split(".", 1)[0]
        if not FILE_ID_RE.match(file_id):
            raise BadRequest(
                f"{field} must be an image URL returned by upload_imgs (got {url[:200]!r})",
                field=field,
            )
        try:
            return self.get(file_id, user_id)
        except NotFound:
            raise BadRequest(f"{field}: no uploaded image of yours at {url[:200]!r}",
                             field=field) from None
