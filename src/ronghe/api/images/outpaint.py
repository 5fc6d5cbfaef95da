"""task_submit's ``outpaint_config``: the field's shape.

``{src_img, outpaint_ratio: 1.25 | 1.5 | 2, align_position: one of the nine}``: the source
(your own upload) goes onto a canvas ``outpaint_ratio`` times its size, at that position, and
the model paints the rest.  The canvas size is fixed at submit (``ronghe.images.submit``),
from the stored upload's size, so the task's ``width``/``height`` are the delivered size as
for any task.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ronghe.api.fields import drop_nulls
from ronghe.engines.diffusion.outpaint import POSITIONS, RATIOS
from ronghe.images.request import OutpaintRequest

SHOWN_RATIOS = ", ".join(f"{r:g}" for r in RATIOS)


def _ratio(value: Any) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except ValueError:
            number = 0.0
        if number in RATIOS:
            return number
    raise ValueError(f"must be one of {SHOWN_RATIOS}")


def _position(value: Any) -> str:
    # "top_left", "Top-Left" and "topleft" all mean the later editions' "topleft".
    if isinstance(value, str):
        name = value.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
        if name in POSITIONS:
            return name
    raise ValueError(f"must be one of {', '.join(POSITIONS)}")


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be the URL of an image you uploaded (upload_img(s))")
    if len(value) > 4096:
        raise ValueError(f"must be at most 4096 characters (got {len(value)})")
    return value.strip()


class OutpaintConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    src_img: Annotated[str, BeforeValidator(_url)] = Field(
        description="your upload's URL (upload_img / upload_imgs)")
    outpaint_ratio: Annotated[float, BeforeValidator(_ratio)] = Field(
        default=1.5, json_schema_extra={"enum": list(RATIOS)},
        description="each side of the canvas, as a multiple of the source's")
    align_position: Annotated[str, BeforeValidator(_position)] = Field(
        default="middle", json_schema_extra={"enum": list(POSITIONS)},
        description="where the source sits on the canvas")

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return drop_nulls(data)

    def to_request(self) -> OutpaintRequest:
        return OutpaintRequest(self.src_img, self.outpaint_ratio, self.align_position)
