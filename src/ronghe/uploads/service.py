"""Storing a batch of uploaded images: every file is checked first, then all are stored or none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from ronghe.errors import BadRequest, PayloadTooLarge, RongheError
from ronghe.settings import Settings
from ronghe.storage.files import FileInfo, FileService
from ronghe.uploads.decode import DecodedImage, ImageRejected, decode_upload

log = structlog.get_logger(__name__)

FIELD = "init_img"
KIND = "upload"


@dataclass(frozen=True)
class Upload:
    """One file part as received: its client-side name, (at most limit + 1) bytes, and its
    whole size when that is known (the message about a file too large reports it)."""

    filename: str
    data: bytes
    size: int | None = None


def check_count(count: int, settings: Settings) -> None:
    if count < 1:
        raise BadRequest(f"{FIELD}: send at least one image file under '{FIELD}'", field=FIELD)
    if count > settings.upload_max_files:
        raise BadRequest(f"{FIELD}: at most {settings.upload_max_files} files per request "
                         f"(upload_max_files); got {count}", field=FIELD)


def store_uploads(files: FileService, settings: Settings, user_id: int,
                  uploads: Sequence[Upload]) -> list[FileInfo]:
    """Decode every upload; if any is bad, store nothing and name each bad file."""
    check_count(len(uploads), settings)
    decoded: list[DecodedImage] = []
    problems: list[tuple[str, ImageRejected]] = []
    for index, upload in enumerate(uploads):
        name = f"{FIELD}[{index}]" + (f" ({upload.filename[:100]!r})" if upload.filename else "")
        try:
            decoded.append(decode_upload(upload.data, settings.upload_max_bytes,
                                         settings.upload_max_pixels, upload.size))
        except ImageRejected as exc:
            problems.append((name, exc))
    if problems:
        msg = "; ".join(f"{name}: {exc.reason}" for name, exc in problems)
        first = problems[0][0].split(" ", 1)[0]
        error: type[RongheError] = (PayloadTooLarge if all(e.too_large for _, e in problems)
                                    else BadRequest)
        raise error(f"no image was stored: {msg}", field=first)
    stored: list[FileInfo] = []
    try:
        for image in decoded:
            stored.append(files.save(user_id, image.data, image.content_type, KIND,
                                     image.width, image.height))
    except BaseException:
        # A storage failure half-way leaves the earlier files of this request behind: remove
        # them so the client can simply retry the whole request.
        for info in stored:
            try:
                files.delete(info.id, user_id)
            except Exception:
                log.warning("could not remove a partial upload", file_id=info.id)
        raise
    return stored
