"""Request and response bodies of the dataset and training endpoints (docs/api.md, "Training").

Field limits live here so a bad value is a 400 naming the field and its range before any
service runs.  ``token`` is declared for the docs only: the auth dependency reads it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ronghe.api.envelopes import Body, MiaohuaFlat
from ronghe.api.fields import Id
from ronghe.datasets.service import MAX_CAPTION, MAX_DESCRIPTION, MAX_IMAGES, MAX_NAME
from ronghe.engines.training.history import MAX_POINTS
from ronghe.jobs.status import Status

AUTO_BASE_MODEL = "自动选择"
MAX_DATASETS_PER_TRAINING = 20
# Preview prompts of one training: each is rendered at every preview step.
MAX_SAMPLE_PROMPTS = 4
MAX_SAMPLE_PROMPT = 500

CaptionText = Annotated[str, Field(max_length=MAX_CAPTION)]
CAPTIONS = Field(default=None, max_length=MAX_IMAGES,
                 description="your own caption of each image, in the order of images ('' for "
                 "none); wins over the automatic one")

TokenField = Field(default=None, description="get_token token (or Authorization: Bearer)")


class _Body(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, allow_inf_nan=False)

    token: str | None = TokenField


def _none_to_empty(value: object) -> object:
    return "" if value is None else value


class DatasetCreate(_Body):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES,
                              description="image URLs returned by upload_imgs")
    captions: list[CaptionText] | None = CAPTIONS

    _empty = field_validator("description", mode="before")(_none_to_empty)


class DatasetPage(_Body):
    page: int | None = Field(default=None, ge=1, le=1_000_000)
    per_page: int | None = Field(default=None, ge=1, le=100)


class DatasetImages(_Body):
    dataset: Id = Field(description="the dataset_id")
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)
    captions: list[CaptionText] | None = CAPTIONS


class TrainSubmit(_Body):
    name: str = Field(min_length=1, max_length=MAX_NAME,
                      description="name of the LoRA model training makes; unique per user")
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    base_model: str = Field(default=AUTO_BASE_MODEL, max_length=128)
    trigger_word: str = Field(default="", max_length=100)
    main_body: str = Field(default="Style", max_length=32)
    nsfw: int = Field(default=0, ge=0, le=1, description="1 = the dataset is NSFW")
    dataset: list[Id] = Field(min_length=1, max_length=MAX_DATASETS_PER_TRAINING,
                              description="dataset_ids (a single id is taken as a list)")
    # Ronghe extensions: override the main_body preset.
    steps: int | None = Field(default=None, ge=1, le=100_000)
    rank: int | None = Field(default=None, ge=1, le=256)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # Issue 14: a URL told about the training (callback_url is the vendor's name for it).
    webhook: str = Field(default="", max_length=2048)
    callback_url: str = Field(default="", max_length=2048)
    webhook_events_filter: list[str] | None = Field(default=None, max_length=3)
    # Issue 17: prompts the training previews render (default: the first training caption).
    sample_prompts: list[Annotated[str, Field(min_length=1, max_length=MAX_SAMPLE_PROMPT)]] = (
        Field(default_factory=list, max_length=MAX_SAMPLE_PROMPTS,
              description=f"up to {MAX_SAMPLE_PROMPTS} prompts for the previews, each "
              f"1-{MAX_SAMPLE_PROMPT} characters"))

    _empty = field_validator("description", "trigger_word", "webhook", "callback_url",
                             mode="before")(_none_to_empty)

    @field_validator("base_model", mode="before")
    @classmethod
    def _auto(cls, value: object) -> object:
        return AUTO_BASE_MODEL if value in (None, "") else value

    @field_validator("dataset", mode="before")
    @classmethod
    def _one_id(cls, value: object) -> object:
        # Some clients send a single id instead of a one-element list.
        return [value] if isinstance(value, int | str) else value


class TaskRef(_Body):
    task_id: str = Field(min_length=1, max_length=64)


# --- responses


class PresetInfo(Body):
    rank: int
    alpha: int | float
    learning_rate: float
    steps: int
    batch_size: int
    resolution: int


class TrainForm(Body):
    base_model: list[str] = Field(description="trainable base models")
    main_body: list[str] = Field(description="what the dataset shows: picks the preset")
    default_base_model: str | None = Field(description=f"what {AUTO_BASE_MODEL!r} picks")
    presets: dict[str, PresetInfo] = Field(description="main_body -> training settings")


class TrainSubmitted(Body):
    task_id: str


class Sample(Body):
    step: int
    url: str = Field(description="signed URL of an image rendered at that step")
    prompt: str = Field(description="the prompt it was rendered from")


class TrainProgress(MiaohuaFlat):
    """train_progress's answer: flat like the vendor's, plus ``code``/``msg``."""

    task_id: str
    create_time: str = Field(description="YYYY-MM-DD HH:MM:SS, UTC")
    description: str
    main_body: str
    model_name: str
    model_id: int = Field(description="the LoRA's versionid, for lora_configs")
    base_model: str
    state: Status
    training_progress: float = Field(ge=0, le=1)
    trigger_word: str
    nsfw: int
    error_msg: str
    step: int
    total_steps: int
    loss: float | None = Field(description="mean loss of the recent steps")
    loss_history: list[tuple[int, float]] = Field(
        description=f"[step, mean loss] so far, oldest first; at most {MAX_POINTS} points (in "
                    "a long run each point averages several steps)")
    eta_seconds: int | float | None
    phase: str = Field(description="loading, caching, training, saving … while running")
    resumed_from_step: int = Field(description="the checkpoint step a restart resumed from")
    preview_images: list[str]
    samples: list[Sample]
    captions: list[str] = Field(description="the caption of each training image, in order "
                                "(empty until the training has captioned them)")
    select_seed: int | None = Field(description="the training's seed")
    wait_time: int = Field(ge=0, description="tasks that will run before this one in its "
                           "queue; 0 when running or finished")


class TrainCancelled(Body):
    task_id: str
    state: Status


class DatasetCreated(Body):
    dataset_id: int


class DatasetRow(Body):
    id: int
    name: str
    description: str
    demo_picture: str = Field(description="signed URL of its first image, or ''")
    create_time: str
    update_time: str
    images: list[str] = Field(description="signed URLs of its images")
    captions: list[str | None] = Field(description="per image: your caption, else the "
                                       "automatic one, else null (not captioned yet)")
    images_num: int


class DatasetList(MiaohuaFlat):
    """dataset_all's answer: flat, with the paging fields the vendor sends."""

    items: list[DatasetRow]
    page: int
    per_page: int
    total: int
    has_next: bool
    has_prev: bool
    totalPages: int  # the vendor's spelling
