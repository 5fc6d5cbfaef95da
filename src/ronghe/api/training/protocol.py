"""Request and response bodies of the dataset and training endpoints (docs/api.md, "Training").

Field limits live here so a bad value is a 400 naming the field and its range before any
service runs, checked as every family's are (``ronghe.api.fields``): ``steps: must be an
integer 1-100000 (got 0)``.  ``token`` is declared for the docs only: the auth dependency
reads it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ronghe.api.envelopes import Body, MiaohuaFlat
from ronghe.api.fields import Id, Range, int_range, text
from ronghe.datasets.service import MAX_CAPTION, MAX_DESCRIPTION, MAX_IMAGES, MAX_NAME
from ronghe.engines.training.history import MAX_POINTS
from ronghe.jobs.status import Status
from ronghe.training.request import AUTO_BASE_MODEL, TrainRequest

MAX_DATASETS_PER_TRAINING = 20
# Preview prompts of one training: each is rendered at every preview step.
MAX_SAMPLE_PROMPTS = 4
MAX_SAMPLE_PROMPT = 500

CaptionText = Annotated[str, text(MAX_CAPTION, strip=True)]
Name = Annotated[str, text(MAX_NAME, at_least=1, strip=True)]
Description = Annotated[str, text(MAX_DESCRIPTION, strip=True)]
Url = Annotated[str, text(2048, strip=True)]
CAPTIONS = Field(default=None, max_length=MAX_IMAGES,
                 description="your own caption of each image, in the order of images ('' for "
                 "none); wins over the automatic one")

TokenField = Field(default=None, description="get_token token (or Authorization: Bearer)")


class _Body(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, allow_inf_nan=False)

    token: str | None = TokenField


class DatasetCreate(_Body):
    name: Name
    description: Description = ""
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES,
                              description="image URLs returned by upload_imgs")
    captions: list[CaptionText] | None = CAPTIONS


class DatasetPage(_Body):
    page: Annotated[int, int_range(1, 1_000_000)] | None = None
    per_page: Annotated[int, int_range(1, 100)] | None = None


class DatasetImages(_Body):
    dataset: Id = Field(description="the dataset_id")
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)
    captions: list[CaptionText] | None = CAPTIONS


class TrainSubmit(_Body):
    name: Name = Field(description="name of the LoRA model training makes; unique per user")
    description: Description = ""
    base_model: Annotated[str, text(128, strip=True)] = AUTO_BASE_MODEL
    trigger_word: Annotated[str, text(100, strip=True)] = ""
    main_body: Annotated[str, text(32, strip=True)] = "Style"
    nsfw: Annotated[int, int_range(0, 1, bools=True)] = Field(
        default=0, description="1 = the dataset is NSFW")
    dataset: list[Id] = Field(min_length=1, max_length=MAX_DATASETS_PER_TRAINING,
                              description="dataset_ids (a single id is taken as a list)")
    # Ronghe extensions: override the main_body preset.
    steps: Annotated[int, int_range(1, 100_000)] | None = None
    rank: Annotated[int, int_range(1, 256)] | None = None
    learning_rate: Annotated[float, Range(0, 1, low_open=True)] | None = None
    resolution: Annotated[int, int_range(32, 2048)] | None = Field(
        default=None, description="training side in pixels, a multiple of 16 (default: the "
        "preset's, 1024 for SDXL and FLUX)")
    seed: Annotated[int, int_range(0, 2**31 - 1)] | None = None
    # Issue 14: a URL told about the training (callback_url is the vendor's name for it).
    webhook: Url = ""
    callback_url: Url = ""
    webhook_events_filter: list[str] | None = Field(default=None, max_length=3)
    # Issue 17: prompts the training previews render (default: the first training caption).
    sample_prompts: list[Annotated[str, text(MAX_SAMPLE_PROMPT, at_least=1, strip=True)]] = (
        Field(default_factory=list, max_length=MAX_SAMPLE_PROMPTS,
              description=f"up to {MAX_SAMPLE_PROMPTS} prompts for the previews, each "
              f"1-{MAX_SAMPLE_PROMPT} characters"))

    @field_validator("base_model", mode="before")
    @classmethod
    def _auto(cls, value: object) -> object:
        return AUTO_BASE_MODEL if value in (None, "") else value

    @field_validator("dataset", mode="before")
    @classmethod
    def _one_id(cls, value: object) -> object:
        # Some clients send a single id instead of a one-element list.
        return [value] if isinstance(value, int | str) else value

    def to_request(self) -> TrainRequest:
        """The body in the training domain's terms (``ronghe.training.service``)."""
        events = self.webhook_events_filter
        return TrainRequest(
            name=self.name, dataset=tuple(self.dataset), description=self.description,
            base_model=self.base_model, trigger_word=self.trigger_word,
            main_body=self.main_body, nsfw=bool(self.nsfw), steps=self.steps, rank=self.rank,
            learning_rate=self.learning_rate, resolution=self.resolution, seed=self.seed,
            webhook=self.webhook,
            callback_url=self.callback_url,
            webhook_events_filter=tuple(events) if events is not None else None,
            sample_prompts=tuple(self.sample_prompts))


class TaskRef(_Body):
    task_id: Annotated[str, text(64, at_least=1, strip=True)]


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
