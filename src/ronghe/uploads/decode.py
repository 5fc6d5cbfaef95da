"""Decoding untrusted image bytes without letting them exhaust memory or CPU.

Order matters: the byte size is checked before anything is parsed, the format and the pixel
count are read from the header before any pixel is decoded (a 50-kB PNG can claim 2 gigapixels),
and only then is the image decoded.  What is stored is a re-encoded copy: EXIF orientation
applied, metadata (GPS, thumbnails, comments) dropped, only pixels and the colour profile kept,
and the generation parameters text (AUTOMATIC1111's, as Ronghe, A1111 and Civitai write it)
so that ``png_info`` can read it back.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from ronghe.engines.diffusion.output import exif_with, image_parameters, png_info

# Pillow format name -> (content type, encoder options for the stored copy).
FORMATS: dict[str, tuple[str, dict[str, object]]] = {
    "JPEG": ("image/jpeg", {"quality": 95, "subsampling": 0}),
    "PNG": ("image/png", {"optimize": False}),
    "WEBP": ("image/webp", {"quality": 95, "method": 4}),
}
ALLOWED = "JPEG, PNG or WebP"
# The longest generation parameters text an upload keeps (characters); longer is dropped.
MAX_PARAMETERS = 65536


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; ``too_large`` marks size/pixel limits."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


@dataclass(frozen=True)
class DecodedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def decode_upload(data: bytes, max_bytes: int, max_pixels: int,
                  size: int | None = None) -> DecodedImage:
    """Validate and re-encode one uploaded image, or raise ImageRejected saying why.

    ``data`` may be cut short past the limit; ``size`` is then the file's real size."""
    size = max(size or 0, len(data))
    if size > max_bytes:
        raise ImageRejected(
            f"file is {size} bytes; the limit is {max_bytes} bytes (upload_max_bytes)",
            too_large=True)
    if not data:
        raise ImageRejected("file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow's own global bomb check would warn or raise first; ours follows below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # formats= limits which decoders Pillow may even try on these bytes.
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError:
        raise ImageRejected(f"not a {ALLOWED} image") from None
    except Image.DecompressionBombError:
        raise ImageRejected(f"image has more than {max_pixels} pixels (upload_max_pixels)",
                            too_large=True) from None
    except Exception as exc:
        # Opening already parses the chunks before the pixels; on hostile bytes Pillow's
        # parsers raise what they hit: ValueError for a zTXt or iCCP chunk that inflates past
        # its limit, zlib.error, struct.error, EOFError ...  All of them mean bad bytes.
        raise ImageRejected(f"image data is malformed ({_said(exc)})") from None
    with image:
        fmt = image.format or ""
        if fmt not in FORMATS:
            raise ImageRejected(f"format {fmt or 'unknown'} is not allowed; use {ALLOWED}")
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageRejected("image has no pixels")
        if width * height > max_pixels:
            raise ImageRejected(
                f"image is {width}x{height} = {width * height} pixels; the limit is "
                f"{max_pixels} pixels (upload_max_pixels)", too_large=True)
        if getattr(image, "n_frames", 1) > 1:
            raise ImageRejected("animated images are not supported; upload a single frame")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
                parameters = image_parameters(image)
                upright = ImageOps.exif_transpose(image)
                return _encode(upright, fmt, image.info.get("icc_profile"), parameters)
        except Exception as exc:
            # Chunks after the pixels (a zTXt bomb at the end), a broken EXIF block or an
            # ICC profile the encoder refuses: the client's bytes, so a 400, never a 500.
            raise ImageRejected(f"image data is truncated or corrupt ({_said(exc)})") from None


def _said(exc: Exception) -> str:
    """Pillow's message, short and plain ASCII, whatever bytes it quotes."""
    text = str(exc) or type(exc).__name__
    return text[:200].encode("ascii", "backslashreplace").decode("ascii")


def _encode(image: Image.Image, fmt: str, icc: bytes | None,
            parameters: str = "") -> DecodedImage:
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        has_alpha = image.mode in ("P", "PA") and "transparency" in image.info
        image = image.convert("RGBA" if has_alpha or image.mode == "PA" else "RGB")
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    content_type, options = FORMATS[fmt]
    out = io.BytesIO()
    # Only the colour profile is carried over (it changes how pixels look), and the
    # generation parameters where A1111 keeps them; the rest of EXIF, XMP and text chunks
    # is dropped.
    extra: dict[str, object] = {"icc_profile": icc} if icc else {}
    if parameters and len(parameters) <= MAX_PARAMETERS:
        if fmt == "PNG":
            extra["pnginfo"] = png_info(parameters)
        else:
            exif = exif_with(parameters, software=False)
            extra["exif"] = exif.tobytes() if fmt == "WEBP" else exif
    image.save(out, format=fmt, **options, **extra)
    return DecodedImage(out.getvalue(), content_type, image.width, image.height)
