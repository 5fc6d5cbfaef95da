"""The answers of task_submit, task_result, task_results and task_cancel.

task_submit and task_result are flat objects in the vendor's documents, but one real client
reads ``info.task_id`` and ``info.images`` (the envelope every other call has): both shapes
are sent, the flat fields and ``{code: 0, msg: "", info: {...}}``, so either kind of client
finds what it reads.  task_results items stay flat (they already sit in ``info``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ronghe.api.envelopes import Body, MiaohuaOk
from ronghe.jobs.status import Status


class ImageUrls(Body):
    large: str = Field(description="signed URL of the full-size JPEG ('' once deleted)")
    middle: str = Field(description="signed URL of the half-size JPEG")
    small: str = Field(description="signed URL of the thumbnail")
    save_index: int
    seed: int | None
    width: int | None
    height: int | None


class ImageInfo(ImageUrls):
    share: bool = False
    shareable: bool = True


class BatchImage(ImageInfo):
    task_id: str
    task_type: str


class SubmittedInfo(Body):
    task_id: str


class TaskSubmitted(Body):
    task_id: str
    code: int = Field(default=0, description="0 on success")
    msg: str = ""
    info: SubmittedInfo = Field(description="the same task_id, for clients that read info")


class TaskState(Body):
    """One task's state and output, as task_result and each task_results item show it."""

    task_id: str
    state: Status
    images: list[ImageInfo] = Field(description="the images, once the task is done")
    error_msg: str = Field(description="why the task failed or was cancelled")
    progress: float = Field(ge=0, le=1)
    seed: int | None = Field(description="the seed used (drawn at submit for -1)")
    prompt: str | None = Field(description="the prompt used (after add_prompt)")
    task_type: str = Field(description="txt2img, img2img, controlnet or outpaint")
    prompt_added: bool = Field(description="add_prompt: whether the chat model added details")
    sampler_name: str = Field(default="", description="the sampler that ran, by A1111's "
                              "name (the model's own when none was named); before it ran, "
                              "the one asked for ('' = the model's own)")
    scheduler: str = Field(default="", description="the schedule type that ran (Automatic "
                           "resolved to the sampler's own: Karras for DPM++ 2M …)")
    select_seed: int | None = Field(description="the vendor's later name for seed")
    wait_time: int = Field(ge=0, description="tasks that will run before this one in its "
                           "queue; 0 when running or finished")
    preview: str = Field(description="while running: signed URL of a small JPEG of the "
                         "current denoising state, else ''")


class ResultInfo(Body):
    """task_result's fields that the vendor's later clients read under ``info``."""

    task_id: str
    state: Status
    images: list[ImageInfo]
    error_msg: str
    progress: float = Field(ge=0, le=1)
    select_seed: int | None


class TaskResult(TaskState):
    """task_result's answer: flat, like the vendor's, and the same again under ``info``."""

    code: int = Field(default=0, description="0 on success")
    msg: str = ""
    info: ResultInfo


class BatchTask(TaskState):
    images: list[BatchImage]  # type: ignore[assignment]


class MissingTask(Body):
    task_id: str
    state: Literal["not_found"] = "not_found"
    error_msg: str = "task not found"
    progress: float = 0.0
    images: list[BatchImage] = Field(default_factory=list, max_length=0)
    select_seed: None = None


class TaskResults(MiaohuaOk[list[BatchTask | MissingTask]]):
    """task_results' answer: one entry per asked id, in the order asked."""


class TaskCancelled(Body):
    task_id: str
    state: Status
    cancel_requested: bool

