"""Typed answers of the API (docs/api.md), as pydantic models.

The server builds these answers as plain dicts, so the shapes are declared here, from the
documented fields.  Every model keeps fields it does not declare (``extra="allow"``): a
server with more fields (a later edition) loses nothing.  Requests are validated with the
server's own request models (``ronghe.api.images.protocol``, ``ronghe.api.training.protocol``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Task states after which nothing changes any more; "not_found" comes from task_results.
FINISHED = ("done", "failed", "cancelled", "not_found")


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Token(Answer):
    token: str
    expires_at: str = ""


class Usage(Answer):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatReply(Answer):
    """A whole chat answer; ``str(reply)`` is its text."""

    id: str = ""
    text: str
    finish_reason: str | None = None
    usage: Usage | None = None

    def __str__(self) -> str:
        return self.text


class TaskImage(Answer):
    """One image of a finished task: signed, expiring URLs of three sizes."""

    large: str = ""
    middle: str = ""
    small: str = ""
    save_index: int = 0
    seed: int | None = None
    width: int | None = None
    height: int | None = None


class PngInfo(Answer):
    """``png_info``: the A1111 parameters text an image carries, parsed.  ``settings`` are
    task_submit fields: ``client.generate(**info.settings)`` draws it again."""

    text: str = ""
    parameters: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


class TaskResult(Answer):
    """``task_result``: state, progress 0-1 and, once done, the images.  ``task_list``
    items add ``kind`` (image or train), ``create_time``, ``finish_time``, ``params``."""

    task_id: str = ""
    kind: str = "image"
    state: str
    progress: float = 0.0
    error_msg: str = ""
    seed: int | None = None
    prompt: str | None = None
    task_type: str = ""
    # The sampler and schedule type that ran, by A1111's names (the model's own when the
    # task named none).
    sampler_name: str | None = None
    scheduler: str | None = None
    images: list[TaskImage] = Field(default_factory=list)
    create_time: str | None = None
    finish_time: str | None = None
    model_name: str | None = None  # train items: the LoRA being trained
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class TaskPage(Answer):
    """One page of ``task_list``: your tasks, newest first."""

    items: list[TaskResult] = Field(default_factory=list)
    page: int = 1
    per_page: int = 20
    total: int = 0
    has_next: bool = False
    # Send as ``cursor`` for the page after this one ("" on the last page).
    next_cursor: str = ""


class CancelResult(Answer):
    task_id: str
    state: str
    cancel_requested: bool = False


class Dataset(Answer):
    id: int
    name: str
    description: str = ""
    images: list[str] = Field(default_factory=list)
    images_num: int = 0
    demo_picture: str = ""
    create_time: str = ""
    update_time: str = ""


class DatasetPage(Answer):
    items: list[Dataset] = Field(default_factory=list)
    page: int = 1
    per_page: int = 20
    total: int = 0
    has_next: bool = False


class TrainSample(Answer):
    step: int
    url: str


class TrainProgress(Answer):
    """``train_progress``: state, step / total_steps, loss and ETA of a training task."""

    task_id: str = ""
    state: str
    training_progress: float = 0.0
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eta_seconds: float | None = None
    phase: str = ""
    model_name: str = ""
    model_id: int | None = None
    base_model: str = ""
    trigger_word: str = ""
    main_body: str = ""
    error_msg: str = ""
    create_time: str = ""
    preview_images: list[str] = Field(default_factory=list)
    samples: list[TrainSample] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class TrainedModel(Answer):
    """What ``train`` made: use ``name`` as ``model`` in ``generate`` (prompt with the
    trigger word), or ``model_id`` as a LoRA's ``versionid``."""

    name: str
    model_id: int | None = None
    task_id: str
    base_model: str = ""
    trigger_word: str = ""
    samples: list[TrainSample] = Field(default_factory=list)


class ModelInfo(Answer):
    model_id: Any = None
    versionid: Any = None
    model_name: str = ""
    base_model: str = ""
    description: str = ""
    tag: str = ""
    author: str = ""
    demo_picture: str = ""
    is_opensource: Any = None


class ModelPage(Answer):
    models: list[ModelInfo] = Field(default_factory=list)
    page: int = 1
    per_page: int = 20
    total: int = 0
    has_next: bool = False


class ApiKey(Answer):
    """A chat API key of yours; ``key`` (the secret) only in the answer that created it."""

    id: int
    name: str = ""
    prefix: str = ""
    key: str | None = None
    create_time: str = ""
    last_used_time: str = ""
