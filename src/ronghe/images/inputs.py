"""What a front door hands the submit path besides plain fields: images it received inline
(a multipart file, a base64 string) rather than as the URL of an earlier upload, and the
size a request leaves to the model or to its source image.

Inline images are checked and stored as the user's uploads, so the submit path
(``ronghe.images.submit``) takes them by URL like any other and the task row holds only
ids.  Decoding is ``uploads.decode``'s: size and pixel limits before any pixel is decoded,
the stored copy re-encoded without the client's metadata.  Every problem names the field
the client sent the image in.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from ronghe.db.models import User
from ronghe.engines.diffusion.registry import ModelEntry
from ronghe.errors import BadRequest, PayloadTooLarge
from ronghe.services import Services
from ronghe.storage.files import FileInfo
from ronghe.uploads.decode import DecodedImage, ImageRejected, decode_upload
from ronghe.uploads.service import KIND


@dataclass(frozen=True)
class Received:
    """An image a request carried, decoded and checked, not yet stored."""

    field: str
    decoded: DecodedImage

    @property
    def size(self) -> tuple[int, int]:
        return self.decoded.width, self.decoded.height

    def image(self) -> Image.Image:
        """The pixels (already checked: bounded in bytes and pixels)."""
        with Image.open(io.BytesIO(self.decoded.data)) as opened:
            opened.load()
            return opened.copy()


def receive(services: Services, data: bytes, field: str) -> Received:
    """Check an image's bytes against the upload limits; the error names ``field``."""
    settings = services.settings
    try:
        decoded = decode_upload(data, settings.upload_max_bytes, settings.upload_max_pixels)
    except ImageRejected as exc:
        error = PayloadTooLarge if exc.too_large else BadRequest
        raise error(f"{field}: {exc.reason}", field=field) from None
    return Received(field, decoded)


def store(services: Services, user: User, received: Received) -> FileInfo:
    """Store a received image as one of the user's uploads."""
    d = received.decoded
    return services.files.save(user.id, d.data, d.content_type, KIND, d.width, d.height)


def store_mask(services: Services, user: User, mask: Image.Image) -> FileInfo:
    """Store an inpainting mask in the submit path's convention (white: paint, black: keep)
    as one of the user's uploads (a greyscale PNG)."""
    grey = mask.convert("L")
    out = io.BytesIO()
    grey.save(out, "PNG")
    return services.files.save(user.id, out.getvalue(), "image/png", KIND, grey.width,
                               grey.height)


def fit_size(width: int, height: int, low: int, high: int, step: int) -> tuple[int, int]:
    """A source image's size as an output size a model takes: scaled (keeping its aspect
    ratio) until both sides are within ``low``-``high``, then each side rounded to a
    multiple of ``step``.  For requests that say "the size of the image I sent"."""
    scale = 1.0
    if max(width, height) * scale > high:
        scale = high / max(width, height)
    if min(width, height) * scale < low:
        scale = low / min(width, height)

    def side(n: int) -> int:
        return min(high, max(low, round(n * scale / step) * step))

    return side(width), side(height)


def default_size(entry: ModelEntry) -> str:
    """The size a model draws when the request leaves it to the model: its family's
    default square, within the model's range."""
    side = min(max(entry.family_info.default_size, entry.min_size), entry.max_size)
    return f"{side}x{side}"


def source_size(entry: ModelEntry, width: int, height: int) -> str:
    """The size of a source image (an edit's), as the model can draw it."""
    w, h = fit_size(width, height, entry.min_size, entry.max_size, entry.size_step)
    return f"{w}x{h}"
