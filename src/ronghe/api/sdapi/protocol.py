"""AUTOMATIC1111's API shapes (``/sdapi/v1/…``), with A1111's field names and defaults.

``txt2img`` and ``img2img`` take every field A1111 does.  What Ronghe has maps onto the one
submit path (``serving.image_request``): prompts, seed, steps, CFG scale, size, batch,
sampler and schedule type, the hires fix, init image and mask with their options.  A field
Ronghe does not have (``restore_faces``, ``tiling``, ``script_name`` …) is accepted and
ignored at its "off" value and refused otherwise, naming it (``OFF``, ``OFF_HIRES``).
Fields A1111 clients send that are not A1111's (SillyTavern sends ``url`` and ``auth``) are
ignored, and ``null`` means a field's default, as lenient clients send it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from ronghe.api.envelopes import Body
from ronghe.api.fields import Range
from ronghe.api.images.protocol import Loose

SEED_MAX = 2**32 - 1
MAX_PROMPT_CHARS = 4000
MAX_BATCH = 8
MAX_ITER = 8
# Images per request (batch_size x n_iter): one task renders them all.
MAX_IMAGES = 16
# A base64 image of the largest upload the defaults allow (20 MB), as a data URL.
MAX_IMAGE_CHARS = 30_000_000
MAX_NAME = 256

Prompt = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
Name = Annotated[str, Field(max_length=MAX_NAME)]
ImageText = Annotated[str, Field(max_length=MAX_IMAGE_CHARS, description=(
    "a base64 image (PNG, JPEG or WebP), optionally as a data: URL"))]


# Unknown fields ignored, null is a field's default: as lenient as task_submit's bodies.
Lenient = Loose


class Processing(Lenient):
    """What txt2img and img2img share (A1111's ``StableDiffusionProcessing``)."""

    prompt: Prompt = ""
    negative_prompt: Prompt = ""
    styles: list[Name] = Field(default_factory=list, max_length=32)
    seed: Annotated[int, Range(-1, SEED_MAX)] = Field(
        default=-1, description="the first image's seed (image i uses seed + i); -1: random")
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: Name | None = None
    # A1111's older name of sampler_name (used when sampler_name is absent).
    sampler_index: Name | None = None
    scheduler: Name | None = None
    batch_size: Annotated[int, Range(1, MAX_BATCH)] = 1
    n_iter: Annotated[int, Range(1, MAX_ITER)] = 1
    steps: Annotated[int, Range(1, 150)] = 50
    cfg_scale: Annotated[float, Range(1, 30)] = 7.0
    width: Annotated[int, Range(64, 4096)] = 512
    height: Annotated[int, Range(64, 4096)] = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] = Field(default_factory=dict, description=(
        "sd_model_checkpoint: the model for this request (else your options' one); "
        "CLIP_stop_at_last_layers and sd_vae at their defaults; other settings are ignored"))
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: Name | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool = False
    firstpass_image: str | None = Field(default=None, max_length=MAX_IMAGE_CHARS)
    comments: dict[str, Any] | None = None
    script_name: Name | None = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    force_task_id: Name | None = None
    infotext: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS * 3)
    # Ronghe's own.
    webhook: str = Field(default="", max_length=4096, description=(
        "Ronghe's own: a URL told about the task, as task_submit's webhook"))


class Txt2ImgRequest(Processing):
    enable_hr: bool = False
    # The hires fix's second pass (A1111 names it so in txt2img).
    denoising_strength: Annotated[float, Range(0, 1)] | None = None
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: Annotated[float, Range(1, 4)] = 2.0
    hr_upscaler: Name | None = None
    hr_second_pass_steps: Annotated[int, Range(0, 150)] = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: Name | None = None
    hr_sampler_name: Name | None = None
    hr_scheduler: Name | None = None
    hr_prompt: Prompt = ""
    hr_negative_prompt: Prompt = ""
    # Forge's, sent by SillyTavern.
    hr_additional_modules: list[Name] | None = None


class Img2ImgRequest(Processing):
    init_images: list[ImageText] = Field(min_length=1, max_length=1, description=(
        "the image to paint over (one per request)"))
    resize_mode: int = 0
    image_cfg_scale: float | None = None
    mask: ImageText | None = Field(default=None, description=(
        "inpainting: white where to paint (black with inpainting_mask_invert 1), resized to "
        "the image"))
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: Annotated[int, Range(0, 64)] | None = None
    mask_round: bool = True
    inpainting_fill: Annotated[int, Range(0, 3)] = Field(
        default=0, description="0 fill, 1 original, 2 latent noise, 3 latent nothing (2 and 3 "
        "on Stable Diffusion models)")
    inpaint_full_res: bool = Field(default=True, description=(
        "paint only the masked area (plus the padding) at the full size"))
    inpaint_full_res_padding: Annotated[int, Range(0, 256)] = 0
    inpainting_mask_invert: Annotated[int, Range(0, 1)] = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = Field(default=None, max_length=MAX_IMAGE_CHARS)
    include_init_images: bool = False
    denoising_strength: Annotated[float, Range(0, 1)] = 0.75


def _falsy(value: Any) -> bool:
    return not value


def _one_of(*values: Any) -> Callable[[Any], bool]:
    return lambda value: value in values


# A1111 field -> (is it at its "off" value, what it is, in the refusal).
OFF: dict[str, tuple[Callable[[Any], bool], str]] = {
    "restore_faces": (_falsy, "face restoration is not available"),
    "tiling": (_falsy, "tiling is not available"),
    "styles": (_falsy, "saved prompt styles are not available: put the words in the prompt"),
    "subseed_strength": (_one_of(0), "variation seeds are not available"),
    "seed_resize_from_h": (_one_of(-1, 0), "seed resizing is not available"),
    "seed_resize_from_w": (_one_of(-1, 0), "seed resizing is not available"),
    "eta": (_one_of(None, 0), "a sampler eta is not available"),
    "s_min_uncond": (_one_of(None, 0), "sampler parameters are not available"),
    "s_churn": (_one_of(None, 0), "sampler parameters are not available"),
    "s_tmax": (_one_of(None, 0), "sampler parameters are not available"),
    "s_tmin": (_one_of(None, 0), "sampler parameters are not available"),
    "s_noise": (_one_of(None, 1), "sampler parameters are not available"),
    "refiner_checkpoint": (_one_of(None, "", "None"), "a refiner model is not available"),
    "firstpass_image": (_falsy, "a first-pass image is not available"),
    "script_name": (_one_of(None, "", "None"), "scripts are not available"),
    "alwayson_scripts": (_falsy, "extensions (alwayson_scripts) are not available"),
    "infotext": (_falsy, "filling a request from an infotext is not available"),
    # img2img
    "resize_mode": (_one_of(0), "only resize mode 0 (just resize) is available"),
    "image_cfg_scale": (_one_of(None, 0, 1, 1.5), "an image CFG scale is not available"),
    "initial_noise_multiplier": (_one_of(None, 1), "an initial noise multiplier is not "
                                                   "available"),
    "latent_mask": (_falsy, "a separate latent mask is not available"),
}
# With enable_hr, the hires fix's options Ronghe does not have (the second pass uses the
# first's model, sampler and prompts).
OFF_HIRES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "hr_resize_x": (_one_of(0), "a target size is not available: use hr_scale"),
    "hr_resize_y": (_one_of(0), "a target size is not available: use hr_scale"),
    "firstphase_width": (_one_of(0), "a first-pass size is not available: use width"),
    "firstphase_height": (_one_of(0), "a first-pass size is not available: use height"),
    "hr_checkpoint_name": (_one_of(None, "", "Use same checkpoint"),
                           "the second pass uses the first pass's model"),
    "hr_sampler_name": (_one_of(None, "", "Use same sampler"),
                        "the second pass uses the first pass's sampler"),
    "hr_scheduler": (_one_of(None, "", "Use same scheduler"),
                     "the second pass uses the first pass's schedule type"),
    "hr_additional_modules": (lambda v: v in (None, [], ["Use same choices"]),
                              "the second pass uses the first pass's modules"),
}
# override_settings keys Ronghe knows, at their "off" values.
OFF_SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "CLIP_stop_at_last_layers": (_one_of(None, 0, 1), "CLIP skip is not available"),
    "sd_vae": (_one_of(None, "", "Automatic", "None"), "choosing a VAE is not available: "
                                                       "each model uses its own"),
}


# --- answers


class ImageResult(Body):
    images: list[str] = Field(description="base64 PNGs, carrying A1111's parameters text")
    parameters: dict[str, Any] = Field(description="the request as it was taken")
    info: str = Field(description="a JSON string: seed, all_seeds, width, height, "
                                  "sampler_name, cfg_scale, steps, infotexts …")


class SdModel(Body):
    title: str = Field(description="what sd_model_checkpoint takes")
    model_name: str
    hash: str = Field(description="a short id of the model (not a file hash)")
    sha256: str
    filename: str
    config: str | None = None


class Sampler(Body):
    name: str
    aliases: list[str]
    options: dict[str, str]


class Scheduler(Body):
    name: str
    label: str
    aliases: list[str] | None
    default_rho: float
    need_inner_model: bool


class Upscaler(Body):
    name: str
    model_name: str | None
    model_path: str | None
    model_url: str | None
    scale: float | None


class LatentUpscaleMode(Body):
    name: str


class SdVae(Body):
    model_name: str
    filename: str


class LoraEntry(Body):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any]


class SdOptions(Body):
    """The settings Ronghe keeps per user (A1111's are global): the model to draw with."""

    sd_model_checkpoint: str = Field(description="your model: a title from sd-models")
    sd_checkpoint_hash: str
    sd_vae: str = "Automatic"
    CLIP_stop_at_last_layers: int = 1
    samples_format: str = "png"


class ProgressState(Body):
    skipped: bool
    interrupted: bool
    stopping_generation: bool
    job: str
    job_count: int = Field(description="your image tasks not ended yet")
    job_timestamp: str
    job_no: int
    sampling_step: int
    sampling_steps: int


class Progress(Body):
    progress: float = Field(description="0-1, of your running image task")
    eta_relative: float = Field(description="seconds left, estimated")
    state: ProgressState
    current_image: str | None = Field(description="its live preview, a base64 PNG")
    textinfo: str | None
    current_task: str | None = Field(description="its task id")


class PngInfoRequest(Lenient):
    image: ImageText = Field(min_length=1)


class PngInfo(Body):
    info: str = Field(description="A1111's parameters text the image carries ('' if none)")
    items: dict[str, Any] = Field(description="the image's other text chunks")
    parameters: dict[str, Any] = Field(description="the parameters text, parsed")


class ExtraSingleImageRequest(Lenient):
    image: ImageText = Field(min_length=1)
    resize_mode: int = Field(default=0, description="0: by upscaling_resize (1, a target "
                                                    "size, is not available)")
    show_extras_results: bool = True
    gfpgan_visibility: float = 0
    codeformer_visibility: float = 0
    codeformer_weight: float = 0
    upscaling_resize: Annotated[float, Range(1, 8)] = 2
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: Name | None = "None"
    upscaler_2: Name | None = "None"
    extras_upscaler_2_visibility: float = 0
    upscale_first: bool = False


class ExtraSingleImage(Body):
    html_info: str
    image: str = Field(description="a base64 PNG")
