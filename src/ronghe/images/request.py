"""What a client asks to draw, in ``task_submit``'s terms: the input of the one submit path
(``ronghe.images.submit``).  Plain data, so a front door's protocol can build it without
importing the services."""

from __future__ import annotations

from dataclasses import dataclass

from ronghe.images.job import DEFAULT_HIGH, DEFAULT_LOW

# ControlNet units per task, controlnet_model included.
MAX_CN_UNITS = 3


@dataclass(frozen=True)
class ControlRequest:
    """A ControlNet unit as requested (``cn_configs[i]``)."""

    cn: str
    # The control image's URL; "" uses the request's init_img.
    img: str = ""
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    # "" = the ControlNet type's default processor.
    control_processor: str = ""
    low_threshold: int = DEFAULT_LOW
    high_threshold: int = DEFAULT_HIGH
    down_sample_rate: int = 1


@dataclass(frozen=True)
class LoraRequest:
    """A LoRA as requested (``lora_configs[i]``): a versionid (id, or the user's name)."""

    versionid: int | str
    merge_weight: float = 1.0


@dataclass(frozen=True)
class OutpaintRequest:
    src_img: str
    outpaint_ratio: float
    align_position: str


@dataclass(frozen=True)
class ImageRequest:
    """What a client asks to draw, in ``task_submit``'s terms; ranges are the front door's
    to check (its protocol documents them), everything else is ``check``'s."""

    prompt: str
    n_images: int
    output_size: str
    strength: float
    neg_prompt: str = ""
    model_name: str = ""
    # The later editions' name of the model; wins over model_name; "" = use model_name.
    versionid: int | str = ""
    # None: the model's recommended guidance, else DEFAULT_GUIDANCE.
    scale: float | None = None
    # -1: a random seed.
    select_seed: int = -1
    init_img: str = ""
    # An inpainting mask (an upload) over init_img: white is painted, black kept.
    mask_img: str = ""
    # The mask's options (A1111's names); None: not sent (the default with a mask, and an
    # error without one).
    mask_blur: int | None = None
    inpainting_mask_invert: bool | None = None
    inpaint_full_res: bool | None = None
    inpaint_full_res_padding: int | None = None
    inpainting_fill: int | None = None
    # jpeg, png or webp: the format of the stored images.
    output_format: str = "jpeg"
    # None: the model's default steps.
    ddim_steps: int | None = None
    # A1111's sampler and schedule type (engines/diffusion/samplers.py); "": the model's own.
    sampler_name: str = ""
    scheduler: str = ""
    controlnet_model: str = ""
    cn_configs: tuple[ControlRequest, ...] = ()
    lora_configs: tuple[LoraRequest, ...] = ()
    add_prompt: bool = False
    outpaint_config: OutpaintRequest | None = None
    # The hires fix (A1111's names): the hr_ fields apply only with enable_hr.
    enable_hr: bool = False
    hr_scale: float = 2.0
    # A built-in upscaler (Latent …, Lanczos, Nearest) or an upscaler model's name.
    hr_upscaler: str = "Latent"
    # 0: the first pass's steps.
    hr_second_pass_steps: int = 0
    hr_denoising_strength: float = 0.7
    webhook: str = ""
    callback_url: str = ""
    webhook_events_filter: tuple[str, ...] | None = None
