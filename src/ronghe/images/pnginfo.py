"""PNG Info: the generation settings an image carries, read back.

Images Ronghe writes carry AUTOMATIC1111's parameters text (``engines.diffusion.output``);
so do A1111's, Forge's, SD.Next's and Fooocus's in A1111 mode, and Civitai's downloads.  An
upload keeps that text (and only that: ``uploads.decode``), so a user can drop any of them
on the form and get their settings back as ``task_submit`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import UnidentifiedImageError

from ronghe.db.models import User
from ronghe.engines.diffusion import infotext
from ronghe.engines.diffusion.output import read_parameters
from ronghe.errors import BadRequest
from ronghe.images.submit import image_file
from ronghe.services import Services


@dataclass(frozen=True)
class PngInfo:
    # The parameters text as found ("" when the image has none).
    text: str = ""
    # A1111's parsed labels (``parse_generation_parameters``): Prompt, Negative prompt,
    # Steps, Sampler, Size-1, Size-2 …, every value a string.
    parameters: dict[str, str] = field(default_factory=dict)
    # The labels Ronghe has fields for, as task_submit fields with their types.
    settings: dict[str, Any] = field(default_factory=dict)


def parse(text: str) -> PngInfo:
    if not text.strip():
        return PngInfo()
    parameters = infotext.parse_parameters(text)
    return PngInfo(text, parameters, infotext.settings(parameters))


def png_info(services: Services, user: User, url: str) -> PngInfo:
    """The settings of one of the user's images (an upload or a generated image) by URL."""
    if not url:
        raise BadRequest("init_img: the URL of an image you uploaded (upload_img) is required",
                         field="init_img")
    info = image_file(services, user, url, "init_img")
    try:
        text = read_parameters(services.files.read(info))
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadRequest("init_img: the file cannot be read as an image",
                         field="init_img") from None
    return parse(text)
