"""Bodies of ``/api/v1b/cn/list``: the ControlNets usable with one model."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from ronghe.api.envelopes import Body
from ronghe.api.images.protocol import Lenient


def _versionid(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a base model's versionid (from /models/base) or a LoRA's "
                         "versionid")
    text = str(value).strip()
    if len(text) > 256:
        raise ValueError(f"must be at most 256 characters (got {len(text)})")
    return text


class CnListRequest(Lenient):
    versionid: Annotated[str, BeforeValidator(_versionid)] = Field(
        default="", description="a base model's versionid (/models/base) or a LoRA's "
        "versionid; '' = the default model")


class CnListRow(Body):
    name: str = Field(description="send as cn_configs[i].cn (or controlnet_model)")
    local_name: str
    desc: str
    can_preview: bool = Field(description="this server can make the unit's control map "
                              "(its default control_processor runs here)")
    demo_picture: str
    demo_preview: str
    demo_result: str
    control_processors: list[str] = Field(description="the control_processor choices")
    default_processor: str = Field(description="used when config.control_processor is ''")
