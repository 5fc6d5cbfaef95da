"""Generated images as JPEGs that carry their generation parameters.

Each image is written three times (``large`` full size, ``middle`` and ``small`` smaller),
and every copy carries the parameters twice:

- a JPEG comment (COM segment) with the parameters as UTF-8 JSON, for programs;
- EXIF ``UserComment`` in the AUTOMATIC1111 "parameters" text format (UTF-16 with the
  ``UNICODE`` charset marker), which image viewers and prompt-reading tools already show.
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from ronghe import __version__

VARIANTS = {"large": None, "middle": 512, "small": 128}
QUALITY = {"large": 92, "middle": 88, "small": 85}
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
SOFTWARE = 0x0131
UNICODE_MARKER = b"UNICODE\x00"


def a1111_text(meta: dict[str, Any]) -> str:
    """``prompt\\nNegative prompt: …\\nSteps: …, CFG scale: …, Seed: …, Size: …, Model: …``."""
    parts = [f"Steps: {meta.get('steps')}", f"CFG scale: {meta.get('scale')}",
             f"Seed: {meta.get('seed')}", f"Size: {meta.get('width')}x{meta.get('height')}",
             f"Model: {meta.get('model')}"]
    if meta.get("strength") is not None:
        parts.append(f"Denoising strength: {meta['strength']}")
    for unit in meta.get("controlnets") or []:
        parts.append(f"ControlNet: {unit.get('cn')} {unit.get('weight')}")
    for lora in meta.get("loras") or []:
        parts.append(f"Lora: {lora.get('name')} {lora.get('weight')}")
    if meta.get("render_size"):
        parts.append(f"Rendered at: {meta['render_size']}")
    lines = [str(meta.get("prompt", ""))]
    if meta.get("negative_prompt"):
        lines.append(f"Negative prompt: {meta['negative_prompt']}")
    lines.append(", ".join(parts))
    return "\n".join(lines)


def shrink(image: Image.Image, longest: int | None) -> Image.Image:
    if longest is None or max(image.size) <= longest:
        return image
    scale = longest / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_jpeg(image: Image.Image, meta: dict[str, Any], quality: int = 92) -> bytes:
    exif = Image.Exif()
    exif[SOFTWARE] = f"Ronghe {__version__}"
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = UNICODE_MARKER + a1111_text(meta).encode("utf-16-be")
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality, exif=exif,
                              comment=json.dumps(meta, ensure_ascii=False).encode("utf-8"))
    return buf.getvalue()


def encode_variants(image: Image.Image, meta: dict[str, Any]) -> dict[str, tuple[bytes, int, int]]:
    """variant -> (JPEG bytes, width, height)."""
    out = {}
    for variant, longest in VARIANTS.items():
        copy = shrink(image, longest)
        out[variant] = (encode_jpeg(copy, meta, QUALITY[variant]), copy.width, copy.height)
    return out


def read_metadata(data: bytes) -> dict[str, Any]:
    """The JSON parameters of a JPEG written by ``encode_jpeg``."""
    with Image.open(io.BytesIO(data)) as image:
        comment = image.info.get("comment", b"")
    return json.loads(comment.decode("utf-8")) if comment else {}


def read_user_comment(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT, b"")
    if isinstance(raw, bytes) and raw.startswith(UNICODE_MARKER):
        return raw[len(UNICODE_MARKER):].decode("utf-16-be")
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
