"""Request bodies of the dataset and training endpoints (docs/api.md, "Training").

Field limits live here so a bad value is a 400 naming the field and its range before any
service runs.  ``token`` is declared for the docs only: the auth dependency reads it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ronghe.datasets.service import MAX_DESCRIPTION, MAX_IMAGES, MAX_NAME

AUTO_BASE_MODEL = "自动选择"
MAX_DATASETS_PER_TRAINING = 20

TokenField = Field(default=None, description="get_token token (or Authorization: Bearer)")


class _Body(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    token: str | None = TokenField


def _none_to_empty(value: object) -> object:
    return "" if value is None else value


class DatasetCreate(_Body):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES,
                              description="image URLs returned by upload_imgs")

    _empty = field_validator("description", mode="before")(_none_to_empty)


class DatasetPage(_Body):
    page: int | None = Field(default=None, ge=1, le=1_000_000)
    per_page: int | None = Field(default=None, ge=1, le=100)


class DatasetImages(_Body):
    dataset: int = Field(ge=1, description="the dataset_id")
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)


class TrainSubmit(_Body):
    name: str = Field(min_length=1, max_length=MAX_NAME,
                      description="name of the LoRA model training makes; unique per user")
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    base_model: str = Field(default=AUTO_BASE_MODEL, max_length=128)
    trigger_word: str = Field(default="", max_length=100)
    main_body: str = Field(default="Style", max_length=32)
    nsfw: int = Field(default=0, ge=0, le=1, description="1 = the dataset is NSFW")
    dataset: list[int] = Field(min_length=1, max_length=MAX_DATASETS_PER_TRAINING)
    # Ronghe extensions: override the main_body preset.
    steps: int | None = Field(default=None, ge=1, le=100_000)
    rank: int | None = Field(default=None, ge=1, le=256)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # Issue 14: a URL told about the training (callback_url is the vendor's name for it).
    webhook: str = Field(default="", max_length=2048)
    callback_url: str = Field(default="", max_length=2048)
    webhook_events_filter: list[str] | None = Field(default=None, max_length=3)

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
