"""``POST /api/v1b/png_info``: the generation settings an image carries (Ronghe's own).

``{token, init_img}`` (an upload's URL, or one of your generated images') ->
``{code: 0, info: {text, parameters, settings}, msg: ""}``; the work is
``ronghe.images.pnginfo``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Body, Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.fields import text
from ronghe.api.images.protocol import Lenient
from ronghe.images import pnginfo

router = APIRouter(prefix="/api/v1b", tags=["images"])


class PngInfoRequest(Lenient):
    init_img: Annotated[str, text(4096)] = Field(
        default="", description="the URL upload_img returned for the image (or of an image "
        "you generated)")


class PngInfoAnswer(Body):
    text: str = Field(description="AUTOMATIC1111's parameters text as found in the image "
                      "(a PNG 'parameters' chunk or EXIF UserComment); '' if it has none")
    parameters: dict[str, str] = Field(description="the text parsed as A1111's PNG Info does: "
                                       "Prompt, Negative prompt and each label of the last "
                                       "line (Steps, Sampler, Size-1, Size-2 …)")
    settings: dict[str, Any] = Field(description="those Ronghe has task_submit fields for, "
                                     "as those fields (prompt, neg_prompt, ddim_steps, scale, "
                                     "select_seed, output_size, model_name, lora_configs …)")


@router.post("/png_info", summary="Read the generation settings an image carries",
             responses=errors(Family.MIAOHUA, 400, 401, 413))
def png_info(body: PngInfoRequest, user: TokenUser,
             services: ServicesDep) -> MiaohuaOk[PngInfoAnswer]:
    found = pnginfo.png_info(services, user, body.init_img.strip())
    return miaohua_ok(PngInfoAnswer(text=found.text, parameters=found.parameters,
                                    settings=found.settings))
