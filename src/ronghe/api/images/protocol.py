"""Request and response bodies of the Miaohua image endpoints, with every field's range.

Range errors read ``n_images: must be an integer 1-8 (got 9)``: the envelope layer names the
field and the value, the validators (``ronghe.api.fields``) say what is allowed.  Unknown
fields are ignored, because real clients send extras (``sensitive_limit_value`` on submit,
``user_id`` …).
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ronghe.api.envelopes import Body, Sparse
from ronghe.api.fields import (
    MAX_ID,
    Checked,
    choice,
    drop_nulls,
    flag,
    int_range,
    number_range,
    text,
)
from ronghe.api.images.cursors import Cursor
from ronghe.api.images.outpaint import OutpaintConfig
from ronghe.engines.diffusion.infotext import FILLS
from ronghe.images.request import (
    MAX_CN_UNITS,
    ControlRequest,
    ImageRequest,
    LoraRequest,
)

SEED_MAX = 2**32 - 1
MAX_PROMPT_CHARS = 2000
MAX_LORAS = 5
MAX_BATCH_IDS = 50


Prompt = Annotated[str, text(MAX_PROMPT_CHARS)]
Name = Annotated[str, text(256)]
Url = Annotated[str, text(4096)]
Flag = Annotated[bool, flag]


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        # ``"ddim_steps": null`` means the default, as lenient clients send it.
        return drop_nulls(data)


class Lenient(Loose):
    token: Annotated[str, text(512)] = ""


class CnProcessorConfig(Loose):
    # Which processors a unit takes depends on its ControlNet: checked at submit (serving).
    control_processor: Annotated[str, text(64)] = ""
    low_threshold: Annotated[int, int_range(1, 255)] = 100
    high_threshold: Annotated[int, int_range(1, 255)] = 200
    # tile units: the control image is shrunk by this factor first.
    down_sample_rate: Annotated[int, int_range(1, 8)] = 1

    @model_validator(mode="after")
    def _ordered(self) -> CnProcessorConfig:
        if self.low_threshold > self.high_threshold:
            raise ValueError(f"low_threshold ({self.low_threshold}) must not exceed "
                             f"high_threshold ({self.high_threshold})")
        return self


class CnConfig(Loose):
    cn: Annotated[str, text(64)] = Field(min_length=1)
    weight: Annotated[float, number_range(0, 2)] = 1.0
    guidance_start: Annotated[float, number_range(0, 1)] = 0.0
    guidance_end: Annotated[float, number_range(0, 1)] = 1.0
    img: Url = ""
    config: CnProcessorConfig = Field(default_factory=CnProcessorConfig)

    @model_validator(mode="after")
    def _ordered(self) -> CnConfig:
        if self.guidance_start > self.guidance_end:
            raise ValueError(f"guidance_start ({self.guidance_start:g}) must not exceed "
                             f"guidance_end ({self.guidance_end:g})")
        return self

    def to_request(self) -> ControlRequest:
        c = self.config
        return ControlRequest(self.cn, self.img, self.weight, self.guidance_start,
                              self.guidance_end, c.control_processor, c.low_threshold,
                              c.high_threshold, c.down_sample_rate)


def _version_id(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value in ("", None):
        raise ValueError("must be a model id (integer) or your model's name")
    if isinstance(value, int) and not 1 <= value <= MAX_ID:
        raise ValueError(f"must be a model id 1-{MAX_ID} or your model's name")
    return value


class LoraConfig(Loose):
    versionid: Annotated[int | str, BeforeValidator(_version_id)] = Field(
        description="a model id (1 to 2^63-1) from the listings, or your model's name")
    merge_weight: Annotated[float, number_range(0, 2)] = 1.0

    def to_request(self) -> LoraRequest:
        return LoraRequest(self.versionid, self.merge_weight)


def _model_version(value: Any) -> int | str:
    if value == "" and isinstance(value, str):
        return ""
    if (isinstance(value, bool) or not isinstance(value, int | str)
            or (isinstance(value, int) and not 1 <= value <= MAX_ID)
            or (isinstance(value, str) and len(value) > 256)):
        raise ValueError(f"must be a model id 1-{MAX_ID} (a LoRA's) or a name (a base "
                         "model's versionid from /api/v1b/models/base, or your model's)")
    return value


OUTPUT_FORMATS = ("jpeg", "png", "webp")


def _fill(value: Any) -> int:
    """inpainting_fill: A1111's index 0-3 (also as a string), or its name."""
    allowed = "must be 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)"
    if isinstance(value, str) and value.strip().lower() in FILLS:
        return FILLS.index(value.strip().lower())
    if isinstance(value, bool):
        raise ValueError(allowed)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(allowed) from None
    if not number.is_integer() or not 0 <= number <= 3:
        raise ValueError(allowed)
    return int(number)


def _output_format(value: Any) -> str:
    name = value.strip().lower() if isinstance(value, str) else value
    if name == "jpg":
        return "jpeg"
    if name not in OUTPUT_FORMATS:
        raise ValueError("must be one of jpeg, png, webp")
    return str(name)


def _maybe_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


class TaskSubmitRequest(Lenient):
    model_name: Name = ""
    # The later editions' name for the model: a base model's versionid from /models/base or
    # a LoRA's; wins over model_name.
    versionid: Annotated[int | str, BeforeValidator(_model_version)] = ""
    prompt: Prompt = ""
    neg_prompt: Prompt = ""
    n_images: Annotated[int, int_range(1, 8)] = 2
    # None: the model's recommended guidance, else the spec's 7.
    scale: Annotated[float | None, number_range(1, 20)] = None
    select_seed: Annotated[int, int_range(-1, SEED_MAX)] = -1
    output_size: Annotated[str, text(32)] = "960x960"
    init_img: Url = ""
    strength: Annotated[float, number_range(0, 1)] = 0.6
    ddim_steps: Annotated[int | None, int_range(1, 150)] = None
    # Ronghe's own, A1111's names: the sampler and schedule type ("" = the model's own
    # scheduler); which ones a model takes depends on its family (checked at submit).
    sampler_name: Annotated[str, text(64)] = ""
    scheduler: Annotated[str, text(32)] = ""
    controlnet_model: Annotated[str, text(64)] = ""
    cn_configs: list[CnConfig] = Field(default_factory=list, max_length=MAX_CN_UNITS)
    lora_configs: list[LoraConfig] = Field(default_factory=list, max_length=MAX_LORAS)
    add_prompt: Flag = False
    outpaint_config: OutpaintConfig | None = None
    # Inpainting (Ronghe's own, A1111's names): a mask over init_img and how it applies;
    # the options need mask_img (ronghe.images.submit), null/absent means the default.
    mask_img: Url = ""
    mask_blur: Annotated[int | None, int_range(0, 64)] = None
    inpainting_mask_invert: Annotated[int | None, int_range(0, 1, bools=True)] = None
    inpaint_full_res: Annotated[int | None, int_range(0, 1, bools=True)] = None
    inpaint_full_res_padding: Annotated[int | None, int_range(0, 256)] = None
    inpainting_fill: Annotated[int | None, Checked(_fill, {"minimum": 0, "maximum": 3})] = None
    output_format: Annotated[str, Checked(_output_format, {"enum": list(OUTPUT_FORMATS)})] = (
        "jpeg")
    # Hires fix (Ronghe's own, A1111's names): render, upscale hr_scale times, then paint
    # over with a second img2img pass; the hr_ fields apply only with enable_hr.
    enable_hr: Flag = False
    hr_scale: Annotated[float, number_range(1, 4)] = 2.0
    # Latent (and its variants), Lanczos, Nearest or an upscaler model's name (submit checks).
    hr_upscaler: Annotated[str, text(128)] = "Latent"
    # 0: the first pass's steps.
    hr_second_pass_steps: Annotated[int, int_range(0, 150)] = 0
    hr_denoising_strength: Annotated[float, number_range(0, 1)] = 0.7
    # Issue 14: a URL told about the task (callback_url is the vendor's name for it).
    webhook: Url = ""
    callback_url: Url = ""
    webhook_events_filter: list[Annotated[str, text(16)]] | None = Field(
        default=None, max_length=3)

    def to_request(self) -> ImageRequest:
        """The body in the submit path's terms (``ronghe.images.submit``)."""
        events = self.webhook_events_filter
        return ImageRequest(
            prompt=self.prompt, n_images=self.n_images, output_size=self.output_size,
            strength=self.strength, neg_prompt=self.neg_prompt, model_name=self.model_name,
            versionid=self.versionid, scale=self.scale, select_seed=self.select_seed,
            init_img=self.init_img, ddim_steps=self.ddim_steps,
            sampler_name=self.sampler_name, scheduler=self.scheduler,
            controlnet_model=self.controlnet_model,
            cn_configs=tuple(u.to_request() for u in self.cn_configs),
            lora_configs=tuple(u.to_request() for u in self.lora_configs),
            add_prompt=self.add_prompt,
            outpaint_config=(self.outpaint_config.to_request()
                             if self.outpaint_config is not None else None),
            mask_img=self.mask_img, mask_blur=self.mask_blur,
            inpainting_mask_invert=_maybe_bool(self.inpainting_mask_invert),
            inpaint_full_res=_maybe_bool(self.inpaint_full_res),
            inpaint_full_res_padding=self.inpaint_full_res_padding,
            inpainting_fill=self.inpainting_fill, output_format=self.output_format,
            enable_hr=self.enable_hr, hr_scale=self.hr_scale, hr_upscaler=self.hr_upscaler,
            hr_second_pass_steps=self.hr_second_pass_steps,
            hr_denoising_strength=self.hr_denoising_strength,
            webhook=self.webhook, callback_url=self.callback_url,
            webhook_events_filter=tuple(events) if events is not None else None)


class TaskResultRequest(Lenient):
    task_id: Annotated[str, text(64)] = Field(min_length=1)
    sensitive_limit_value: Annotated[float, number_range(0, 1)] = 0.0


class TaskResultsRequest(Lenient):
    task_ids: list[Annotated[str, text(64)]] = Field(min_length=1, max_length=MAX_BATCH_IDS)
    sensitive_limit_value: Annotated[float, number_range(0, 1)] = 0.0


class TaskCancelRequest(Lenient):
    task_id: Annotated[str, text(64)] = Field(min_length=1)


class ModelListRequest(Lenient):
    page: Annotated[int, int_range(1, 100_000)] = 1
    per_page: Annotated[int, int_range(1, 100)] = 20
    query: Annotated[str, text(128)] = ""


TASK_STATES = ("pending", "running", "done", "failed", "cancelled")
TASK_KINDS = ("image", "train", "all")


class TaskListRequest(Lenient):
    page: Annotated[int, int_range(1, 100_000)] = 1
    per_page: Annotated[int, int_range(1, 100)] = 20
    state: Annotated[str, choice(TASK_STATES, empty_ok=True)] = ""
    kind: Annotated[str, choice(TASK_KINDS, empty_ok=False)] = "image"
    # Keyset paging (api/images/cursors.py): the tasks after a previous answer's next_cursor.
    cursor: Annotated[str, Cursor] = ""


# --- responses


class SamplerChoice(Body):
    name: str = Field(description="an A1111 sampler name, as sampler_name")
    schedules: list[str] = Field(description="the scheduler values it takes")
    automatic: str = Field(description="the schedule type 'Automatic' stands for")
    paints_over: bool = Field(default=True, description="whether it also runs img2img, "
                              "inpainting, outpainting and hires fix (false: txt2img only)")


class FormModel(Body):
    name: str
    aliases: list[str]
    family: str
    description: str
    default: bool
    min_size: int
    max_size: int
    native_resolution: int | None
    resolution: dict[str, list[str]] = Field(description="aspect ratio -> WxH sizes")
    controlnets: list[str]
    default_steps: int
    default_scale: float
    family_label: str = Field(default="", description="the family's name as people say it "
                              "(SD 1.5, SDXL, FLUX.1, SD 3 / 3.5, Z-Image, FLUX.2 [klein])")
    size_step: int = Field(default=8, description="output sides are multiples of this")
    modes: list[str] = Field(default_factory=list, description="what the model can do: "
                             "txt2img, img2img, inpaint, controlnet")
    negative_prompt: bool = Field(default=True, description="whether neg_prompt reaches the "
                                  "model (FLUX has none)")
    guidance: str = Field(default="cfg", description="how scale is used: cfg (classifier-"
                          "free guidance), embedded (FLUX.1 dev's distilled guidance) or "
                          "none (a few-step model ignores it)")
    problem: str | None = Field(default=None, description="why it cannot be used now "
                                "(e.g. a truncated checkpoint); null when it can")
    samplers: list[SamplerChoice] = Field(
        default_factory=list, description="the sampler_name values this model takes, each "
        "with its scheduler values; none sent = the model's own sampler")
    weighted_prompts: bool = Field(
        default=False, description="whether (word:1.3), [word] and BREAK weight the prompt "
        "(CLIP families); elsewhere prompts are plain text")
    hires_upscalers: list[str] = Field(
        default_factory=list, description="the hr_upscaler values this model takes with "
        "enable_hr (the Latent ones on SD 1.5, SD 2.x and SDXL only); [] = no hires fix")
    inpainting_fills: list[int] = Field(
        default_factory=list, description="the inpainting_fill values this model takes with "
        "mask_img (2, latent noise, and 3, latent nothing, on Stable Diffusion UNets only)")


class UpscalerRow(Body):
    name: str = Field(description="as hr_upscaler (or upscale's upscaler)")
    kind: str = Field(description="latent (hires fix only), resampler or model (a file of "
                      "<models>/upscalers)")
    architecture: str = Field(default="", description="a model's architecture (ESRGAN, "
                              "SwinIR, HAT …)")
    scale: int | None = Field(default=None, description="a model's own scale (2, 4 …)")
    problem: str | None = Field(default=None, description="why a model file cannot be "
                                "used; null when it can")


class TrainedChoice(Body):
    name: str
    base_model: str
    versionid: int


class FormField(Sparse):
    """One field of task_submit; the keys after ``default`` appear where they apply."""

    name: str
    type: str
    description: str
    default: Any
    choices: list[str] | dict[str, list[str]] | None = None
    min: int | float | None = None
    max: int | float | None = None
    accepted_max: int | None = None
    submit_as: str | None = None
    max_items: int | None = None
    models: list[FormModel] | None = None
    trained: list[TrainedChoice] | None = None
    upscalers: list[UpscalerRow] | None = None


class BaseModelRow(Body):
    author: str
    base_model: str
    demo_picture: str
    description: str
    is_opensource: bool
    model_id: str
    model_name: str
    tag: str
    versionid: str = Field(description="use as versionid (or model_name) in task_submit")
    aliases: list[str]
    controlnets: list[str]
    problem: str | None = Field(default=None, description="why it cannot be used now; "
                                "null when it can")
    family_label: str = Field(default="", description="the family (tag) as people name it")
    min_size: int = Field(default=64, description="smallest output side")
    max_size: int = Field(default=2048, description="largest output side")
    size_step: int = Field(default=8, description="output sides are multiples of this")
    default_steps: int = Field(default=50, description="steps when ddim_steps is not sent")


class LoraRow(Body):
    author: str
    base_model: str
    demo_picture: str = Field(description="signed URL of a sample made with it, or ''")
    description: str
    is_opensource: bool
    model_id: int
    model_name: str
    tag: str
    versionid: int = Field(description="use in task_submit's lora_configs")
    trigger_word: str


Row = TypeVar("Row")


class ModelPage(Body, Generic[Row]):
    has_next: bool
    page: int
    per_page: int
    total: int
    models: list[Row]


class ControlNetRow(Body):
    name: str
    local_name: str
    desc: str
    demo_picture: str
    demo_preview: str
    demo_result: str
    models: list[str] = Field(description="the models it works with")

