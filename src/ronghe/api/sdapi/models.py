"""The A1111-compatible API's catalog: the models (``sd-models``), the caller's options
(``sd_model_checkpoint``, per user and remembered, never global), and the lists clients fill
their dropdowns from (samplers, schedule types, upscalers, VAEs, LoRAs)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ronghe.api.field_names import renamed
from ronghe.api.sdapi.protocol import (
    LatentUpscaleMode,
    LoraEntry,
    Sampler,
    Scheduler,
    SdModel,
    SdOptions,
    SdVae,
    Upscaler,
)
from ronghe.db.models import User
from ronghe.engines.diffusion import samplers
from ronghe.engines.diffusion.upscale import LATENT_MODES
from ronghe.errors import BadRequest, RongheError
from ronghe.images import submit as images
from ronghe.images import upscale
from ronghe.preferences.service import Preferences
from ronghe.services import Services

CHECKPOINT = "sdapi.sd_model_checkpoint"
# "name [hash]", A1111's title of a checkpoint: the name is what counts.
TITLE = re.compile(r"^(.*?)\s*\[[0-9a-fA-F]{8,64}\]$")
AUTOMATIC = samplers.AUTOMATIC


def checkpoint_name(title: str) -> str:
    """A title from sd-models ("name [hash]") or a plain name -> the model's name."""
    title = title.strip()
    match = TITLE.match(title)
    return match[1].strip() if match else title


def model_hash(name: str) -> str:
    """A stable short id per model name (A1111 shows a file hash; hashing gigabytes per
    listing is not worth it, and clients only match the title)."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def chosen_model(services: Services, user: User) -> str:
    """The caller's sd_model_checkpoint ("" = the default model)."""
    value = Preferences(services.db).get(user.id, CHECKPOINT, "")
    return value if isinstance(value, str) else ""


def _resolve(services: Services, user: User, name: str, field: str) -> str:
    """A checkpoint title or name -> a model the caller may use (its name), else 400."""
    name = checkpoint_name(name)
    try:
        images.resolve_model(services, user, name)
    except RongheError as exc:
        raise renamed(exc, {"model_name": field}) from None
    return name


def sd_models(services: Services, user: User) -> list[SdModel]:
    """Base models, then the caller's trained models (each drawn by name, with its base)."""
    rows = []
    for entry in services.image_models.entries():
        rows.append(_model_row(entry.name, entry.path.name))
    loras, _ = services.loras.list(user.id, limit=200)
    for lora in loras:
        rows.append(_model_row(lora.name, f"lora:{lora.name}"))
    return rows


def _model_row(name: str, filename: str) -> SdModel:
    digest = model_hash(name)
    return SdModel(title=name, model_name=name, hash=digest[:10], sha256=digest,
                   filename=filename)


def default_model(services: Services) -> str:
    entry = services.image_models.find("")
    return entry.name if entry is not None else ""


def get_options(services: Services, user: User) -> SdOptions:
    name = chosen_model(services, user) or default_model(services)
    return SdOptions(sd_model_checkpoint=name, sd_checkpoint_hash=model_hash(name))


def set_options(services: Services, user: User, body: dict[str, Any]) -> None:
    """Only sd_model_checkpoint is kept (the caller's own); other A1111 settings are
    global ones Ronghe does not have, and are ignored (clients post back what they got)."""
    if "sd_model_checkpoint" not in body:
        return
    value = body["sd_model_checkpoint"]
    if not isinstance(value, str) or len(value) > 256:
        raise BadRequest("sd_model_checkpoint: must be a model's title from "
                         "/sdapi/v1/sd-models", field="sd_model_checkpoint")
    name = _resolve(services, user, value, "sd_model_checkpoint") if value.strip() else ""
    Preferences(services.db).set(user.id, CHECKPOINT, name or None)


# --- lists


def samplers_of(services: Services, user: User) -> list[Sampler]:
    """The samplers the caller's model takes (the flow-matching families take fewer)."""
    entry = services.image_models.find(chosen_model(services, user))
    family = entry.family if entry is not None else "sd15"
    return [Sampler(name=s["name"], aliases=[], options=(
        {"scheduler": _schedule_name(s["automatic"])} if s["automatic"] != AUTOMATIC else {}))
        for s in samplers.describe(family)]


def _schedule_name(label: str) -> str:
    return label.lower().replace(" ", "_")


def schedulers() -> list[Scheduler]:
    # A1111's rho for Karras, and the SGM schedule's need of the model's sigmas.
    return [Scheduler(name=_schedule_name(label), label=label, aliases=None,
                      default_rho=7.0 if label == samplers.KARRAS else -1,
                      need_inner_model=label == samplers.SGM_UNIFORM)
            for label in samplers.SCHEDULES]


def upscalers(services: Services) -> list[Upscaler]:
    """A1111's "None", then the built-in resamplers and the upscalers folder's models (the
    Latent modes are latent-upscale-modes')."""
    rows = [Upscaler(name="None", model_name=None, model_path=None, model_url=None,
                     scale=4)]
    for choice in upscale.choices(services):
        if choice.kind == "latent" or choice.problem is not None:
            continue
        rows.append(Upscaler(name=choice.name, model_name=choice.architecture or None,
                             model_path=None, model_url=None, scale=choice.scale or 4))
    return rows


def latent_upscale_modes() -> list[LatentUpscaleMode]:
    return [LatentUpscaleMode(name=name) for name in LATENT_MODES]


def sd_vaes() -> list[SdVae]:
    return []  # each model uses its own


def loras(services: Services, user: User) -> list[LoraEntry]:
    """The caller's ready LoRAs and the public ones; ``alias`` is what a prompt's
    ``<lora:alias:weight>`` tag takes (the name of one's own, the id of another's)."""
    own, _ = services.loras.list(user.id, limit=200)
    public, _ = services.loras.list_public(limit=200)
    seen: set[int] = set()
    rows = []
    for info in [*own, *public]:
        if info.id in seen:
            continue
        seen.add(info.id)
        alias = info.name if info.user_id == user.id else str(info.id)
        rows.append(LoraEntry(name=info.name, alias=alias, path=f"lora:{info.id}",
                              metadata={"ss_base_model_version": info.base_model,
                                        "trigger_word": info.trigger_word,
                                        "versionid": info.id}))
    return rows


def refresh_checkpoints(services: Services) -> None:
    services.image_models.scan()
