"""``/api/v1b/cn/list``: the ControlNets usable with a base model or a LoRA's base model."""

from __future__ import annotations

from ronghe.api.envelopes import MiaohuaOk, miaohua_ok
from ronghe.api.images.cn_protocol import CnListRow
from ronghe.api.images.forms import CN_DESCRIPTIONS
from ronghe.db.models import User
from ronghe.engines.diffusion import control
from ronghe.engines.diffusion.control import annotators
from ronghe.engines.diffusion.registry import ModelEntry
from ronghe.images.submit import model_for
from ronghe.services import Services


def rows(services: Services, entry: ModelEntry) -> list[CnListRow]:
    root = services.settings.controlnet_annotators_path
    out = []
    for cn in sorted(entry.controlnets):
        kind = control.unit_type(cn) or cn
        local, desc = CN_DESCRIPTIONS.get(kind, (cn, f"ControlNet {cn}"))
        default = control.default_processor(cn)
        runs = default not in annotators.NEEDS or annotators.missing(default, root) is None
        out.append(CnListRow(name=cn, local_name=local, desc=desc, can_preview=runs,
                             demo_picture="", demo_preview="", demo_result="",
                             control_processors=list(control.allowed_processors(cn)),
                             default_processor=default))
    return out


def cn_list(services: Services, user: User, versionid: str) -> MiaohuaOk[list[CnListRow]]:
    entry = model_for(services, user, versionid)
    return miaohua_ok(rows(services, entry))
