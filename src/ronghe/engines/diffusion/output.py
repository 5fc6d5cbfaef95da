"""Generated images as JPEG, PNG or WebP files that carry their generation parameters.

Each image is written three times (``large`` full size, ``middle`` and ``small`` smaller),
in the task's ``output_format``, and every copy carries the parameters twice:

- AUTOMATIC1111's "parameters" text (``infotext.format_parameters``), where A1111 puts it:
  a PNG ``parameters`` text chunk; EXIF ``UserComment`` (UTF-16 with the ``UNICODE``
  charset marker, as A1111's piexif writes it) in JPEG and WebP.  A1111's PNG Info tab,
  Civitai and prompt-reading tools show it; ``png_info`` reads it back.
- Ronghe's own JSON, for programs: a JPEG comment (COM segment), a PNG ``ronghe`` text
  chunk, or EXIF ``MakerNote`` in WebP (WebP has no comment).
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, PngImagePlugin

from ronghe import __version__
from ronghe.engines.diffusion.infotext import format_parameters

VARIANTS = {"large": None, "middle": 512, "small": 128}
QUALITY = {"large": 92, "middle": 88, "small": 85}
# output_format -> (Pillow format, content type)
FORMATS = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"),
           "webp": ("WEBP", "image/webp")}
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
MAKER_NOTE = 0x927C
SOFTWARE = 0x0131
UNICODE_MARKER = b"UNICODE\x00"
ASCII_MARKER = b"ASCII\x00\x00\x00"
PNG_PARAMETERS = "parameters"
PNG_RONGHE = "ronghe"
PNG_LEVEL = 4


def a1111_text(meta: dict[str, Any]) -> str:
    """The image's A1111 parameters text (``infotext.format_parameters``), Ronghe's
    version last, as A1111 ends with its own."""
    return format_parameters(meta, {"Version": f"Ronghe {__version__}"})


def shrink(image: Image.Image, longest: int | None) -> Image.Image:
    if longest is None or max(image.size) <= longest:
        return image
    scale = longest / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def user_comment(text: str) -> bytes:
    """EXIF UserComment bytes for ``text``: the UNICODE marker and UTF-16 (big-endian)."""
    return UNICODE_MARKER + text.encode("utf-16-be")


def exif_with(text: str, json_bytes: bytes | None = None, software: bool = True) -> Image.Exif:
    """EXIF holding the parameters text as UserComment (and the JSON as MakerNote)."""
    exif = Image.Exif()
    if software:
        exif[SOFTWARE] = f"Ronghe {__version__}"
    ifd = exif.get_ifd(EXIF_IFD)
    ifd[USER_COMMENT] = user_comment(text)
    if json_bytes is not None:
        ifd[MAKER_NOTE] = json_bytes
    return exif


def png_info(text: str, meta_json: str | None = None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    # tEXt when the text is Latin-1, else iTXt (UTF-8), as A1111's add_text does.
    info.add_text(PNG_PARAMETERS, text)
    if meta_json is not None:
        info.add_itxt(PNG_RONGHE, meta_json, zip=True)
    return info


def encode(image: Image.Image, meta: dict[str, Any], output_format: str = "jpeg",
           quality: int = 92) -> bytes:
    """One image in ``output_format`` (jpeg, png, webp) with both kinds of metadata."""
    text = a1111_text(meta)
    meta_json = json.dumps(meta, ensure_ascii=False)
    buf = io.BytesIO()
    rgb = image.convert("RGB")
    if output_format == "png":
        # Lossless: the pixels are exactly what the model (and the mask's kept area) gave.
        # zlib level 4: a third of the default's (6) time on a worker's CPU for ~1 % more
        # bytes (960x960: 0.24 s against 0.7 s).
        rgb.save(buf, "PNG", pnginfo=png_info(text, meta_json), compress_level=PNG_LEVEL)
    elif output_format == "webp":
        rgb.save(buf, "WEBP", quality=quality,
                 exif=exif_with(text, meta_json.encode("utf-8")).tobytes())
    else:
        rgb.save(buf, "JPEG", quality=quality, exif=exif_with(text),
                 comment=meta_json.encode("utf-8"))
    return buf.getvalue()


def encode_jpeg(image: Image.Image, meta: dict[str, Any], quality: int = 92) -> bytes:
    return encode(image, meta, "jpeg", quality)


def encode_variants(image: Image.Image, meta: dict[str, Any],
                    output_format: str = "jpeg") -> dict[str, tuple[bytes, int, int]]:
    """variant -> (bytes in ``output_format``, width, height)."""
    out = {}
    for variant, longest in VARIANTS.items():
        copy = shrink(image, longest)
        out[variant] = (encode(copy, meta, output_format, QUALITY[variant]), copy.width,
                        copy.height)
    return out


def decode_user_comment(raw: Any) -> str:
    """EXIF UserComment as text, whichever charset marker it starts with."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes):
        return ""
    if raw.startswith(UNICODE_MARKER):
        body = raw[len(UNICODE_MARKER):]
        # Big-endian is what A1111 (piexif) writes; a byte-order mark says otherwise.
        if body.startswith(b"\xff\xfe"):
            return body[2:].decode("utf-16-le", "replace")
        return body.decode("utf-16-be", "replace")
    if raw.startswith(ASCII_MARKER) or raw.startswith(b"\x00" * 8):
        raw = raw[8:]
    return raw.decode("utf-8", "replace").rstrip("\x00")


def image_parameters(image: Image.Image) -> str:
    """The A1111 parameters text an opened image carries ("" if none): a PNG text chunk, or
    EXIF UserComment (JPEG, WebP, and PNG's eXIf)."""
    text = image.info.get(PNG_PARAMETERS)
    if not text and image.format == "PNG":
        # A text chunk after the pixels (some writers put it there) is read with them.
        text = getattr(image, "text", {}).get(PNG_PARAMETERS)
    if isinstance(text, str) and text:
        return text
    try:
        raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except Exception:  # a broken EXIF block is no parameters, not a failure
        return ""
    return decode_user_comment(raw)


def read_parameters(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return image_parameters(image)


def read_metadata(data: bytes) -> dict[str, Any]:
    """Ronghe's JSON parameters of an image written by ``encode`` ({} if it has none)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG":
            raw: Any = image.info.get(PNG_RONGHE, "")
        elif image.format == "WEBP":
            raw = image.getexif().get_ifd(EXIF_IFD).get(MAKER_NOTE, b"")
        else:
            raw = image.info.get("comment", b"")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def read_user_comment(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return decode_user_comment(image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT, b""))
