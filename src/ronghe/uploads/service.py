"""Storing a batch of uploaded images: every file is checked first, then all are stored or none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from ronghe.errors import BadRequest, PayloadTooLarge, RongheError
from ronghe.settings import Settings
from ronghe.storage.files import FileInfo, FileService
from ronghe.text import describe, invalid_char
from ronghe.uploads.decode import DecodedImage, ImageRejected, decode_upload

log = structlog.get_logger(__name__)

FIELD = "init_img"
KIND = "upload"
# A training caption is a sentence or two; SD's text encoders read 77 tokens anyway.
MAX_CAPTION = 1000
CAPTION_SUFFIX = ".txt"


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


def _stem(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def caption_text(data: bytes, field: str) -> str:
    """A caption file's text: UTF-8, one line or a few, at most MAX_CAPTION characters."""
    try:
        text = " ".join(data.decode("utf-8-sig").split())
    except UnicodeDecodeError:
        raise BadRequest(f"{field}: a caption file must be UTF-8 text", field=field) from None
    if not text:
        raise BadRequest(f"{field}: the caption file is empty", field=field)
    bad = invalid_char(text)
    if bad is not None:
        raise BadRequest(f"{field}: the caption contains {describe(bad)}", field=field)
    if len(text) > MAX_CAPTION:
        raise BadRequest(f"{field}: a caption is at most {MAX_CAPTION} characters "
                         f"(got {len(text)})", field=field)
    return text


def split_captions(uploads: Sequence[Upload]) -> tuple[list[Upload], dict[int, str]]:
    """Images, and the captions of ``.txt`` files sent beside them (kohya's layout: the
    caption of ``cat1.png`` is ``cat1.txt``), keyed by the image's index among the images.
    A ``.txt`` with no image of its name stays among the images, to be refused as one."""
    stems: dict[str, None] = {}
    for upload in uploads:
        if upload.filename and not upload.filename.lower().endswith(CAPTION_SUFFIX):
            stems.setdefault(_stem(upload.filename))
    is_caption = [u.filename.lower().endswith(CAPTION_SUFFIX) and _stem(u.filename) in stems
                  for u in uploads]
    images = [u for u, caption in zip(uploads, is_caption, strict=True) if not caption]
    by_stem: dict[str, int] = {}
    for index, upload in enumerate(images):
        if upload.filename:
            by_stem.setdefault(_stem(upload.filename), index)
    captions: dict[int, str] = {}
    for index, upload in enumerate(uploads):
        if is_caption[index]:
            captions[by_stem[_stem(upload.filename)]] = caption_text(upload.data,
                                                                     f"{FIELD}[{index}]")
    return images, captions


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
