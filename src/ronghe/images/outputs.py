"""A finished image task's pictures, as the front doors that answer with the pictures
themselves hand them back (the OpenAI Images API, the AUTOMATIC1111-compatible API).

A task stores each image full size in its output format, carrying its parameters
(``engines.diffusion.output``: A1111's text and Ronghe's JSON).  A client that asks for
another format gets the same pixels re-encoded by the same writer, so they still carry
A1111's ``parameters`` text; the stored format is answered byte for byte.  ``exported``
keeps a re-encoded copy as a file of the user's, so a URL answer points at the format that
was asked for.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ronghe.engines.diffusion import output
from ronghe.errors import NotFound
from ronghe.jobs import Status, TaskView
from ronghe.jobs.previews import DETAIL_KEY
from ronghe.services import Services
from ronghe.storage.files import FileInfo

# output_format -> content type
FORMATS = {name: content_type for name, (_, content_type) in output.FORMATS.items()}
# Kind of the stored copies ``exported`` makes (the user's files, listed under it).
EXPORT_KIND = "export"
# A lossy format asked for at no less than this quality is answered with the stored file
# (written at output.QUALITY["large"]) rather than a second, lossier encoding of it.
STORED_QUALITY = output.QUALITY["large"]


@dataclass(frozen=True)
class Picture:
    """One image of a finished task: its place in the batch, its seed and its stored file."""

    index: int
    seed: int
    width: int
    height: int
    file: FileInfo


def pictures(services: Services, task: TaskView) -> list[Picture]:
    """The task's images in batch order; an image the user has deleted since is left out."""
    if task.state is not Status.DONE or not task.result:
        return []
    items = task.result.get("images", [])
    files = services.files.get_many([item["large"] for item in items], task.user_id)
    out = []
    for item in items:
        info = files.get(item["large"])
        if info is None:
            continue
        out.append(Picture(int(item["save_index"]), int(item.get("seed") or 0),
                           int(item.get("width") or info.width or 0),
                           int(item.get("height") or info.height or 0), info))
    return out


def read(services: Services, picture: Picture) -> tuple[bytes, dict[str, Any]]:
    """The stored image and Ronghe's parameters it carries."""
    try:
        data = services.files.read(picture.file)
    except FileNotFoundError:
        raise NotFound(f"image {picture.index} of the task is gone from storage") from None
    return data, output.read_metadata(data)


def stored_format(data: bytes) -> str:
    """png, jpeg or webp: the format of stored image bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return (image.format or "").lower()


def same_bytes(stored: str, fmt: str, quality: int) -> bool:
    """Whether the stored file already is what a client asked for."""
    return stored == fmt and (fmt == "png" or quality >= STORED_QUALITY)


def encode(data: bytes, meta: dict[str, Any], fmt: str, quality: int = 100) -> bytes:
    """Stored image bytes (carrying ``meta``) as ``fmt`` (png, jpeg or webp); ``quality``
    1-100 applies to jpeg and webp."""
    if same_bytes(stored_format(data), fmt, quality):
        return data
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    return output.encode(image, meta, fmt, max(1, min(quality, 100)))


def plain(data: bytes, fmt: str, size: tuple[int, int] | None = None) -> bytes:
    """Image bytes as ``fmt`` without metadata, resized to ``size`` when given: a live
    preview (a small JPEG) shown as the picture it will become."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    if size is not None and image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, output.FORMATS[fmt][0])
    return buf.getvalue()


def exported(services: Services, task: TaskView, picture: Picture, fmt: str,
             quality: int = 100) -> FileInfo:
    """A stored file of the picture in ``fmt``, for a URL answer: the task's own file when
    that is what was asked for, else a copy under an id derived from the task, the image and
    the format (asking again rewrites it rather than adding another)."""
    if same_bytes(_format_of(picture.file), fmt, quality):
        return picture.file
    data, meta = read(services, picture)
    encoded = encode(data, meta, fmt, quality)
    file_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ronghe:export:{task.id}:{picture.index}:"
                                                 f"{fmt}:{quality}"))
    return services.files.save(task.user_id, encoded, FORMATS[fmt], EXPORT_KIND,
                               picture.width, picture.height, file_id=file_id)


def _format_of(info: FileInfo) -> str:
    return next((name for name, ctype in FORMATS.items() if ctype == info.content_type), "")


def preview(services: Services, task: TaskView) -> tuple[bytes, float] | None:
    """The running task's latest live preview (a small JPEG) and when it was written, or
    None when it has none yet."""
    detail = task.detail or {}
    if task.state is not Status.RUNNING or not detail.get(DETAIL_KEY):
        return None
    try:
        info = services.files.get(str(detail[DETAIL_KEY]), task.user_id)
        return services.files.read(info), float(detail.get("preview_at") or 0.0)
    except (NotFound, FileNotFoundError):
        return None  # swept, or being rewritten: the next poll sees the next one
