"""OpenAI Images API shapes (``/v1/images/generations``, ``/edits``, ``/variations``), as far
as Ronghe draws them, and how each maps onto the one submit path.

- ``model``: a Ronghe model (base model or LoRA) by name; OpenAI's own names (``dall-e-2``,
  ``dall-e-3``, ``gpt-image-*``) and ``""`` mean the default model, as clients hard-code them.
- ``n`` 1-10; ``size``: OpenAI's sizes, ``auto`` (the model's default; for an edit, the
  image's own size) or any ``WxH`` the model draws.
- ``quality`` sets the steps, as a share of the model's default steps (``QUALITY_STEPS``).
- ``response_format``: ``b64_json`` when absent (what gpt-image models always answer, and
  what Nextcloud and LibreChat read), ``url`` for a signed URL that needs no credentials.
- ``output_format`` png (default), jpeg or webp, ``output_compression`` 0-100 for the lossy
  ones.
- ``style``, ``background``, ``moderation``, ``user`` and ``input_fidelity`` are accepted and
  change nothing (images are opaque; there is no moderation pass).
- Ronghe's own: ``negative_prompt``, ``seed`` (-1 or absent: random) and ``webhook``.

Unknown fields are ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ronghe.api.envelopes import Body, Sparse
from ronghe.api.fields import Range

MAX_N = 10
# DALL·E 3's limit: the prompt is stored with the task and written into every image's
# metadata (EXIF holds at most 64 kB).
MAX_PROMPT_CHARS = 4000
SEED_MAX = 2**32 - 1
MAX_EDIT_IMAGES = 16
# Clients hard-code OpenAI's model names: each means the default model.
OPENAI_MODELS = re.compile(r"^(dall-e-[23]|gpt-image-[\w.-]+|chatgpt-image-[\w.-]+)$",
                           re.IGNORECASE)
# quality -> steps as a share of the model's default steps (at least 1, at most 150).
QUALITY_STEPS = {"low": 0.5, "medium": 1.0, "standard": 1.0, "auto": 1.0, "high": 1.5,
                 "hd": 1.5, "xhigh": 2.0, "max": 2.0}
MAX_STEPS = 150
Quality = Literal["standard", "hd", "low", "medium", "high", "xhigh", "max", "auto"]
Background = Literal["transparent", "opaque", "auto"]
OutputFormat = Literal["png", "jpeg", "webp"]
ResponseFormat = Literal["url", "b64_json"]
Count = Annotated[int, Range(1, MAX_N)]
Compression = Annotated[int, Range(0, 100)]
Partials = Annotated[int, Range(0, 3)]
Seed = Annotated[int, Range(-1, SEED_MAX)]


def is_openai_model(name: str) -> bool:
    return bool(OPENAI_MODELS.match(name.strip()))


def steps_for(quality: str | None, default_steps: int) -> int:
    share = QUALITY_STEPS.get(quality or "auto", 1.0)
    return max(1, min(MAX_STEPS, round(default_steps * share)))


class Options(BaseModel):
    """What every Images endpoint takes besides its image(s) and prompt."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str | None = Field(default=None, max_length=256, description=(
        "a Ronghe model (base model or LoRA) by name; dall-e-2, dall-e-3, gpt-image-* and "
        "an empty or absent one mean the default model"))
    n: Count | None = Field(default=None, description="images to make, 1-10 (default 1)")
    size: str | None = Field(default=None, max_length=32, description=(
        "WxH (OpenAI's sizes or any size the model draws), or auto"))
    quality: Quality | None = Field(default=None, description=(
        "steps: low 0.5x, standard/medium/auto 1x, high/hd 1.5x, xhigh/max 2x the model's "
        "default"))
    response_format: ResponseFormat | None = Field(default=None, description=(
        "b64_json (the default) or url (signed, works without credentials)"))
    output_format: OutputFormat | None = Field(default=None, description="png (default), "
                                               "jpeg or webp")
    output_compression: Compression | None = Field(default=None, description=(
        "jpeg/webp quality 0-100 (default 100)"))
    background: Background | None = Field(default=None, description="accepted; images are "
                                          "opaque")
    user: str | None = Field(default=None, max_length=256)
    stream: bool | None = Field(default=None, description="send partial images and the "
                                "result as server-sent events")
    partial_images: Partials | None = Field(default=None, description=(
        "live previews to send while streaming, 0-3 (fewer when the image is done sooner)"))
    # Ronghe's own.
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS,
                                        description="Ronghe's own: what to keep out")
    seed: Seed | None = Field(default=None, description="Ronghe's own: the first image's "
                              "seed (image i uses seed + i); -1 or absent: random")
    webhook: str | None = Field(default=None, max_length=4096, description=(
        "Ronghe's own: a URL told about the task, as task_submit's webhook"))


class GenerationRequest(Options):
    """``POST /v1/images/generations`` (JSON)."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    style: Literal["vivid", "natural"] | None = Field(default=None,
                                                      description="accepted; no effect")
    moderation: Literal["low", "auto"] | None = None


Strength = Annotated[float, Range(0, 1)]


class EditForm(Options):
    """``POST /v1/images/edits`` (multipart), besides its image(s) and mask."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    strength: Strength | None = Field(default=None, description=(
        "Ronghe's own: how far from the source, 0-1 (default 1 with a mask: the masked area "
        "is painted anew; 0.75 without)"))
    input_fidelity: Literal["high", "low"] | None = Field(default=None,
                                                          description="accepted; no effect")


class VariationForm(Options):
    """``POST /v1/images/variations`` (multipart), besides its image."""

    prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS, description=(
        "Ronghe's own: what the variations should show (default: nothing in particular)"))
    strength: Strength | None = Field(default=None, description=(
        "Ronghe's own: how far from the source, 0-1 (default 0.6)"))


# --- answers


class ImageData(Sparse):
    b64_json: str | None = Field(default=None, description="the image, base64")
    url: str | None = Field(default=None, description="a signed URL of the image")
    revised_prompt: str | None = Field(default=None, description="the prompt it was made from")


class ImagesResponse(Sparse):
    created: int = Field(description="Unix time")
    data: list[ImageData]
    background: Literal["opaque"] | None = None
    output_format: OutputFormat | None = None
    quality: str | None = None
    size: str | None = Field(default=None, description="WxH of the images")


class UsageDetails(Body):
    image_tokens: int = 0
    text_tokens: int = 0


class Usage(Body):
    """Token counts mean nothing for a diffusion model: zeros, for clients that read them."""

    input_tokens: int = 0
    input_tokens_details: UsageDetails = Field(default_factory=UsageDetails)
    output_tokens: int = 0
    total_tokens: int = 0


STREAM: dict[str, Any] = {
    "description": "With `stream: true`: server-sent events `image_generation.partial_image` "
                   "(`image_edit.partial_image` for edits) with up to `partial_images` live "
                   "previews, then one `…completed` event per image; an error is an `error` "
                   "event",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def event(kind: str, b64: str, fmt: str, quality: str, size: str,
          index: int | None = None) -> dict[str, Any]:
    """One stream event's data: ``<prefix>.partial_image`` with its index, or
    ``<prefix>.completed`` with usage, as OpenAI sends them."""
    body: dict[str, Any] = {"type": kind, "b64_json": b64, "background": "opaque",
                            "created_at": int(time.time()), "output_format": fmt,
                            "quality": quality, "size": size}
    if index is not None:
        body["partial_image_index"] = index
    else:
        body["usage"] = Usage().model_dump()
    return body
