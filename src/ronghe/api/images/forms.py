"""The generation form and the model / ControlNet listings, built from the live registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ronghe.api.envelopes import MiaohuaOk, miaohua_ok
from ronghe.api.images.protocol import (
    MAX_LORAS,
    SEED_MAX,
    BaseModelRow,
    ControlNetRow,
    FormField,
    FormModel,
    LoraRow,
    ModelPage,
    TrainedChoice,
    UpscalerRow,
)
from ronghe.catalog.service import LoraInfo
from ronghe.db.models import User
from ronghe.engines.diffusion import masking, prompts, samplers
from ronghe.engines.diffusion.families import CONTROLNET, IMG2IMG, INPAINT, TXT2IMG
from ronghe.engines.diffusion.outpaint import POSITIONS, RATIOS
from ronghe.engines.diffusion.registry import DEFAULT_GUIDANCE, ModelEntry, ModelRegistry
from ronghe.images import upscale
from ronghe.images.request import MAX_CN_UNITS
from ronghe.images.submit import RANDOM_SEED_MAX
from ronghe.services import Services

# The spec's resolution choices; each model shows those within its own size range.
RESOLUTIONS = {
    "1:1": ["512x512", "640x640", "768x768", "1024x1024"],
    "2:3": ["512x768", "640x960", "768x1152", "1024x1536"],
    "3:2": ["768x512", "960x640", "1152x768", "1536x1024"],
}
CN_DESCRIPTIONS = {
    "canny": ("Canny 边缘", "Follows the outlines (canny edges) of the control image"),
    "brightness": ("亮度控制", "Follows the light and dark areas (luminance) of the control "
                   "image"),
    "tile": ("分块重绘", "Redraws a low-resolution or blurred control image with detail, "
             "keeping its layout and colours"),
    "lineart": ("线稿", "Follows the line drawing of the control image"),
    "lineart_anime": ("动漫线稿", "Follows the anime-style line drawing of the control image"),
    "openpose": ("姿态", "Follows the body pose found in the control image"),
}


def resolutions(entry: ModelEntry) -> dict[str, list[str]]:
    def fits(size: str) -> bool:
        return all(entry.min_size <= int(side) <= entry.max_size for side in size.split("x"))

    return {ratio: [s for s in sizes if fits(s)] for ratio, sizes in RESOLUTIONS.items()}


def model_info(entry: ModelEntry, default: bool, registry: ModelRegistry,
               upscaler_models: tuple[str, ...] = ()) -> FormModel:
    return FormModel(
        name=entry.name, aliases=list(entry.spec.aliases), family=registry.family_label(entry),
        problem=registry.problem(entry),
        description=entry.spec.description, default=default,
        min_size=entry.min_size, max_size=entry.max_size,
        native_resolution=entry.native_resolution, resolution=resolutions(entry),
        controlnets=sorted(entry.controlnets), default_steps=entry.default_steps,
        default_scale=entry.recommended_guidance or DEFAULT_GUIDANCE,
        family_label=entry.family_info.label, size_step=entry.size_step,
        modes=[m for m in (TXT2IMG, IMG2IMG, INPAINT, CONTROLNET)
               if entry.family_info.supports(m)],
        negative_prompt=entry.family_info.negative_prompt, guidance=entry.guidance_kind,
        samplers=samplers.describe(entry.family),
        weighted_prompts=entry.family in prompts.WEIGHTED_FAMILIES,
        hires_upscalers=upscale.hires_choices(entry, list(upscaler_models)),
        inpainting_fills=(list(masking.fills(entry.family_info.is_sd))
                          if entry.family_info.supports(INPAINT) else []),
    )


def generation_form(services: Services, user: User | None) -> MiaohuaOk[list[FormField]]:
    registry = services.image_models
    default_entry = registry.find("")
    upscalers = upscale.choices(services)
    usable = tuple(u.name for u in upscalers if u.kind == "model" and u.problem is None)
    models = [model_info(e, e is default_entry, registry, usable) for e in registry.entries()]
    choices = registry.choices()
    trained: list[TrainedChoice] = []
    if user is not None:
        loras, _ = services.loras.list(user.id, limit=100)
        trained = [TrainedChoice(name=x.name, base_model=x.base_model, versionid=x.id)
                   for x in loras]
        choices += [x.name for x in trained if x.name not in choices]
    all_cn = sorted({cn for e in registry.entries() for cn in e.controlnets})
    default_sizes = resolutions(default_entry) if default_entry else RESOLUTIONS
    info: list[dict[str, Any]] = [
        {"name": "model_name", "type": "list", "description": "model name",
         "choices": choices, "default": registry.default_choice(), "models": models,
         "trained": trained},
        {"name": "prompt", "type": "string", "description": "prompt", "default": ""},
        {"name": "neg_prompt", "type": "string", "description": "negative prompt",
         "default": ""},
        {"name": "n_images", "type": "int", "description": "number of images",
         "default": 2, "min": 1, "max": 8},
        {"name": "versionid", "type": "str", "description": "the model by versionid (wins "
         "over model_name): a base model's from /models/base or a LoRA's", "default": "",
         "choices": [e.name for e in registry.entries()]},
        {"name": "scale", "type": "float", "description": "Guidance Scale", "default": 7,
         "min": 1, "max": 20},
        {"name": "select_seed", "type": "int", "description": "seed", "default": -1,
         "min": 0, "max": RANDOM_SEED_MAX, "accepted_max": SEED_MAX},
        {"name": "resolution", "type": "dict", "description": "resolution",
         "submit_as": "output_size", "choices": default_sizes, "default": "512x512"},
        {"name": "init_img", "type": "str", "description": "init image url", "default": ""},
        {"name": "controlnet_model", "type": "str", "description": "controlnet model",
         "default": "", "choices": ["", *all_cn]},
        {"name": "strength", "type": "float", "description": "image weight for img2img",
         "default": 0.6, "min": 0, "max": 1},
        {"name": "ddim_steps", "type": "int", "description": "sampling steps",
         "default": default_entry.default_steps if default_entry else 50, "min": 1, "max": 150},
        {"name": "sampler_name", "type": "str", "description": "sampler (A1111's names; "
         "'' = the model's own; each model's choices are in model_name.models[].samplers)",
         "default": "", "choices": ["", *dict.fromkeys(
             s["name"] for e in registry.entries() for s in samplers.describe(e.family))]},
        {"name": "scheduler", "type": "str", "description": "schedule type, with "
         "sampler_name", "default": samplers.AUTOMATIC, "choices": list(samplers.SCHEDULES)},
        {"name": "add_prompt", "type": "bool", "description": "let the chat model improve "
         "the prompt first", "default": False},
        {"name": "cn_configs", "type": "list", "description": "ControlNet units",
         "default": [], "max_items": MAX_CN_UNITS, "choices": all_cn},
        {"name": "lora_configs", "type": "list", "description": "LoRA models "
         "({versionid, merge_weight 0-2})", "default": [], "max_items": MAX_LORAS},
        {"name": "outpaint_config", "type": "dict", "description": "outpainting: "
         "{src_img: your upload's URL, outpaint_ratio, align_position}", "default": None,
         "choices": {"outpaint_ratio": [f"{r:g}" for r in RATIOS],
                     "align_position": list(POSITIONS)}},
        {"name": "mask_img", "type": "str", "description": "inpainting: a mask over init_img "
         "(your upload's URL; white repaints, black keeps)", "default": ""},
        {"name": "mask_blur", "type": "int", "description": "inpainting: feather the mask's "
         "edge by this many pixels", "default": 4, "min": 0, "max": 64},
        {"name": "inpainting_mask_invert", "type": "bool", "description": "inpainting: "
         "repaint the black area instead", "default": False},
        {"name": "inpaint_full_res", "type": "bool", "description": "inpainting: paint only "
         "the mask's box at output_size, then paste it back (the image keeps its size)",
         "default": False},
        {"name": "inpaint_full_res_padding", "type": "int", "description": "inpainting, "
         "only masked: pixels around the mask's box", "default": 32, "min": 0, "max": 256},
        {"name": "inpainting_fill", "type": "int", "description": "inpainting: what the "
         "masked area starts from (0 fill: the colours around it, 1 original, 2 latent "
         "noise, 3 latent nothing; 2 and 3 on Stable Diffusion UNets: the model's "
         "inpainting_fills)", "default": 1, "choices": ["0", "1", "2", "3"], "min": 0,
         "max": 3},
        {"name": "output_format", "type": "str", "description": "the stored images' format",
         "default": "jpeg", "choices": ["jpeg", "png", "webp"]},
        {"name": "enable_hr", "type": "bool", "description": "hires fix: render, upscale "
         "hr_scale times, then paint over with a second image-to-image pass (text-to-image "
         "only; each model's hr_upscaler choices are in model_name.models[].hires_upscalers)",
         "default": False},
        {"name": "hr_scale", "type": "float", "description": "hires fix: upscale by",
         "default": 2.0, "min": 1, "max": 4},
        {"name": "hr_upscaler", "type": "str", "description": "hires fix: the upscaler "
         "(Latent ones, Lanczos, Nearest or an upscaler model of <models>/upscalers)",
         "default": "Latent",
         "choices": [u.name for u in upscalers if u.problem is None],
         "upscalers": [UpscalerRow(name=u.name, kind=u.kind, architecture=u.architecture,
                                   scale=u.scale, problem=u.problem) for u in upscalers]},
        {"name": "hr_second_pass_steps", "type": "int", "description": "hires fix: steps "
         "of the second pass (0 = ddim_steps)", "default": 0, "min": 0, "max": 150},
        {"name": "hr_denoising_strength", "type": "float", "description": "hires fix: how "
         "much the second pass changes", "default": 0.7, "min": 0, "max": 1},
    ]
    return miaohua_ok([FormField(**field) for field in info])


# --- model listings

Row = TypeVar("Row", BaseModelRow, LoraRow)


def page_of(rows: list[Row], total: int, page: int, per_page: int) -> MiaohuaOk[ModelPage[Row]]:
    return miaohua_ok(ModelPage[Row](has_next=page * per_page < total, page=page,
                                     per_page=per_page, total=total, models=rows))


def matches(query: str, *texts: str) -> bool:
    q = query.strip().lower()
    return not q or any(q in t.lower() for t in texts)


def base_models(registry: ModelRegistry, page: int, per_page: int,
                query: str) -> MiaohuaOk[ModelPage[BaseModelRow]]:
    rows = [BaseModelRow(
        author="ronghe", base_model="", demo_picture="",
        description=e.spec.description, is_opensource=True, model_id=e.name,
        model_name=e.name, tag=registry.family_label(e), versionid=e.name,
        aliases=list(e.spec.aliases), controlnets=sorted(e.controlnets),
        problem=registry.problem(e), family_label=e.family_info.label, min_size=e.min_size,
        max_size=e.max_size, size_step=e.size_step, default_steps=e.default_steps,
    ) for e in registry.entries()
        if matches(query, e.name, e.spec.description, e.family, *e.spec.aliases)]
    start = (page - 1) * per_page
    return page_of(rows[start:start + per_page], len(rows), page, per_page)


def lora_rows(services: Services, items: list[LoraInfo], base_url: str,
              author: Callable[[LoraInfo], str]) -> list[LoraRow]:
    # demo_picture: a signed URL of the sample training rendered with the finished LoRA,
    # if its owner still has it; one query for the whole page.
    files = services.files.get_many([x.demo_file_id for x in items if x.demo_file_id])

    def picture(info: LoraInfo) -> str:
        file = files.get(info.demo_file_id or "")
        return services.files.url(file, base_url) if file and file.user_id == info.user_id else ""

    return [LoraRow(author=author(x), base_model=x.base_model, demo_picture=picture(x),
                    description=x.description, is_opensource=x.public, model_id=x.id,
                    model_name=x.name, tag=x.main_body, versionid=x.id,
                    trigger_word=x.trigger_word) for x in items]


def private_models(services: Services, user: User, page: int, per_page: int,
                   query: str, base_url: str) -> MiaohuaOk[ModelPage[LoraRow]]:
    items, total = services.loras.list(user.id, query, (page - 1) * per_page, per_page)
    return page_of(lora_rows(services, items, base_url, lambda _: user.email),
                   total, page, per_page)


def public_loras(services: Services, page: int, per_page: int, query: str,
                 base_url: str) -> MiaohuaOk[ModelPage[LoraRow]]:
    """Ready LoRAs that an operator published (``ronghe lora publish``)."""
    items, total = services.loras.list_public(query, (page - 1) * per_page, per_page)
    # Authors by user id: emails are not shown to other users.
    return page_of(lora_rows(services, items, base_url, lambda x: f"user {x.user_id}"),
                   total, page, per_page)


# --- ControlNet listings


def controlnet_rows(entries: list[ModelEntry]) -> list[ControlNetRow]:
    supported: dict[str, list[str]] = {}
    for entry in entries:
        for cn in entry.controlnets:
            supported.setdefault(cn, []).append(entry.name)
    rows = []
    for cn in sorted(supported):
        local, desc = CN_DESCRIPTIONS.get(cn, (cn, f"ControlNet {cn}"))
        rows.append(ControlNetRow(name=cn, local_name=local, desc=desc, demo_picture="",
                                  demo_preview="", demo_result="", models=supported[cn]))
    return rows


def artist_controlnets(registry: ModelRegistry) -> MiaohuaOk[list[ControlNetRow]]:
    """ControlNets of the house model (the default one, aliased Artist_V0.1.3)."""
    default = registry.find("")
    return miaohua_ok(controlnet_rows([default] if default else []))


def opensource_controlnets(registry: ModelRegistry) -> MiaohuaOk[list[ControlNetRow]]:
    """ControlNets of every configured model, each with the models that support it."""
    return miaohua_ok(controlnet_rows(registry.entries()))
