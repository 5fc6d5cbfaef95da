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
    choice,
    drop_nulls,
    flag,
    int_range,
    number_range,
    text,
)
from ronghe.api.images.cursors import Cursor
from ronghe.api.images.outpaint import OutpaintConfig
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
    controlnet_model: Annotated[str, text(64)] = ""
    cn_configs: list[CnConfig] = Field(default_factory=list, max_length=MAX_CN_UNITS)
    lora_configs: list[LoraConfig] = Field(default_factory=list, max_length=MAX_LORAS)
    add_prompt: Flag = False
    outpaint_config: OutpaintConfig | None = None
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
            controlnet_model=self.controlnet_model,
            cn_configs=tuple(u.to_request() for u in self.cn_configs),
            lora_configs=tuple(u.to_request() for u in self.lora_configs),
            add_prompt=self.add_prompt,
            outpaint_config=(self.outpaint_config.to_request()
                             if self.outpaint_config is not None else None),
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
    problem: str | None = Field(default=None, description="why it cannot be used now "
                                "(e.g. a truncated checkpoint); null when it can")


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

