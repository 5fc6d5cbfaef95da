"""Request and response bodies of the Miaohua image endpoints, with every field's range.

Range errors read ``n_images: must be an integer 1-8 (got 9)``: the envelope layer names the
field and the value, the validators here say what is allowed.  Unknown fields are ignored,
because real clients send extras (``sensitive_limit_value`` on submit, ``user_id`` …).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ronghe.api.envelopes import Body, Sparse
from ronghe.api.fields import MAX_ID, Checked, drop_nulls
from ronghe.api.images.cursors import Cursor
from ronghe.api.images.outpaint import OutpaintConfig

SEED_MAX = 2**32 - 1
MAX_PROMPT_CHARS = 2000
MAX_CN_UNITS = 3
MAX_LORAS = 5
MAX_BATCH_IDS = 50


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _span(lo: float, hi: float) -> str:
    return f"{_num(lo)}-{_num(hi)}" if lo >= 0 else f"from {_num(lo)} to {_num(hi)}"


def _int_range(lo: int, hi: int) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be an integer {_span(lo, hi)}")
        if isinstance(value, str):
            value = value.strip()
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"must be an integer {_span(lo, hi)}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be an integer {_span(lo, hi)}")
        return value

    return Checked(check, {"minimum": lo, "maximum": hi})


def _float_range(lo: float, hi: float) -> Any:
    def check(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"must be a number {_span(lo, hi)}")
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number {_span(lo, hi)}") from None
        if not math.isfinite(number) or not lo <= number <= hi:
            raise ValueError(f"must be a number {_span(lo, hi)}")
        return number

    return Checked(check, {"minimum": lo, "maximum": hi})


def _text(limit: int) -> Any:
    def check(value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters (got {len(value)})")
        return value

    return Checked(check, {"maxLength": limit})


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", ""):
        return value.strip().lower() in ("true", "1")
    raise ValueError("must be true or false")


Prompt = Annotated[str, _text(MAX_PROMPT_CHARS)]
Name = Annotated[str, _text(256)]
Url = Annotated[str, _text(4096)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        # ``"ddim_steps": null`` means the default, as lenient clients send it.
        return drop_nulls(data)


class Lenient(Loose):
    token: Annotated[str, _text(512)] = ""


class CnProcessorConfig(Loose):
    # Which processors a unit takes depends on its ControlNet: checked at submit (serving).
    control_processor: Annotated[str, _text(64)] = ""
    low_threshold: Annotated[int, _int_range(1, 255)] = 100
    high_threshold: Annotated[int, _int_range(1, 255)] = 200
    # tile units: the control image is shrunk by this factor first.
    down_sample_rate: Annotated[int, _int_range(1, 8)] = 1

    @model_validator(mode="after")
    def _ordered(self) -> CnProcessorConfig:
        if self.low_threshold > self.high_threshold:
            raise ValueError(f"low_threshold ({self.low_threshold}) must not exceed "
                             f"high_threshold ({self.high_threshold})")
        return self


class CnConfig(Loose):
    cn: Annotated[str, _text(64)] = Field(min_length=1)
    weight: Annotated[float, _float_range(0, 2)] = 1.0
    guidance_start: Annotated[float, _float_range(0, 1)] = 0.0
    guidance_end: Annotated[float, _float_range(0, 1)] = 1.0
    img: Url = ""
    config: CnProcessorConfig = Field(default_factory=CnProcessorConfig)

    @model_validator(mode="after")
    def _ordered(self) -> CnConfig:
        if self.guidance_start > self.guidance_end:
            raise ValueError(f"guidance_start ({self.guidance_start:g}) must not exceed "
                             f"guidance_end ({self.guidance_end:g})")
        return self


def _version_id(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value in ("", None):
        raise ValueError("must be a model id (integer) or your model's name")
    if isinstance(value, int) and not 1 <= value <= MAX_ID:
        raise ValueError(f"must be a model id 1-{MAX_ID} or your model's name")
    return value


class LoraConfig(Loose):
    versionid: Annotated[int | str, BeforeValidator(_version_id)] = Field(
        description="a model id (1 to 2^63-1) from the listings, or your model's name")
    merge_weight: Annotated[float, _float_range(0, 2)] = 1.0


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
    n_images: Annotated[int, _int_range(1, 8)] = 2
    # None: the model's recommended guidance, else the spec's 7.
    scale: Annotated[float | None, _float_range(1, 20)] = None
    select_seed: Annotated[int, _int_range(-1, SEED_MAX)] = -1
    output_size: Annotated[str, _text(32)] = "960x960"
    init_img: Url = ""
    strength: Annotated[float, _float_range(0, 1)] = 0.6
    ddim_steps: Annotated[int | None, _int_range(1, 150)] = None
    controlnet_model: Annotated[str, _text(64)] = ""
    cn_configs: list[CnConfig] = Field(default_factory=list, max_length=MAX_CN_UNITS)
    lora_configs: list[LoraConfig] = Field(default_factory=list, max_length=MAX_LORAS)
    add_prompt: Flag = False
    outpaint_config: OutpaintConfig | None = None
    # Issue 14: a URL told about the task (callback_url is the vendor's name for it).
    webhook: Url = ""
    callback_url: Url = ""
    webhook_events_filter: list[Annotated[str, _text(16)]] | None = Field(
        default=None, max_length=3)


class TaskResultRequest(Lenient):
    task_id: Annotated[str, _text(64)] = Field(min_length=1)
    sensitive_limit_value: Annotated[float, _float_range(0, 1)] = 0.0


class TaskResultsRequest(Lenient):
    task_ids: list[Annotated[str, _text(64)]] = Field(min_length=1, max_length=MAX_BATCH_IDS)
    sensitive_limit_value: Annotated[float, _float_range(0, 1)] = 0.0


class TaskCancelRequest(Lenient):
    task_id: Annotated[str, _text(64)] = Field(min_length=1)


class ModelListRequest(Lenient):
    page: Annotated[int, _int_range(1, 100_000)] = 1
    per_page: Annotated[int, _int_range(1, 100)] = 20
    query: Annotated[str, _text(128)] = ""


TASK_STATES = ("pending", "running", "done", "failed", "cancelled")
TASK_KINDS = ("image", "train", "all")


def _choice(choices: tuple[str, ...], empty_ok: bool) -> Any:
    def check(value: Any) -> str:
        allowed = ", ".join(choices) + (' or "" (any)' if empty_ok else "")
        if not isinstance(value, str) or (value.strip().lower() not in choices
                                          and not (empty_ok and not value.strip())):
            raise ValueError(f"must be one of {allowed}")
        return value.strip().lower()

    return BeforeValidator(check)


class TaskListRequest(Lenient):
    page: Annotated[int, _int_range(1, 100_000)] = 1
    per_page: Annotated[int, _int_range(1, 100)] = 20
    state: Annotated[str, _choice(TASK_STATES, empty_ok=True)] = ""
    kind: Annotated[str, _choice(TASK_KINDS, empty_ok=False)] = "image"
    # Keyset paging (api/images/cursors.py): the tasks after a previous answer's next_cursor.
    cursor: Annotated[str, Cursor] = ""


# The same validators for the other /api/v1b request bodies (accounts, keys, admin).
int_range = _int_range
text = _text
choice = _choice


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

