"""task_list's answer: a page of the user's tasks, whose items are image tasks (task_result's
fields plus when, which model and the submission), training tasks, or any other kind.

Kept beside ``protocol`` (the image family's request and answer models) so that module stays
readable; ``ItemPage`` is also the page of the admin listings.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import Field

from ronghe.api.envelopes import Body, MiaohuaOk
from ronghe.api.images.result_protocol import ImageUrls
from ronghe.jobs.status import Status

Item = TypeVar("Item")


class ItemPage(Body, Generic[Item]):
    """A page of a listing (task_list, the admin lists)."""

    items: list[Item]
    page: int
    per_page: int
    total: int
    has_next: bool
    has_prev: bool


class ListedImage(ImageUrls):
    task_id: str
    task_type: str


class ListedLora(Body):
    versionid: int | str
    merge_weight: float | int
    name: str


class ListedCnProcessor(Body):
    control_processor: str
    low_threshold: Any
    high_threshold: Any
    down_sample_rate: int = 1


class ListedCn(Body):
    cn: str
    weight: float | int
    guidance_start: float | int
    guidance_end: float | int
    img: str = Field(description="signed URL of the control image, or ''")
    config: ListedCnProcessor


class ListedOutpaint(Body):
    src_img: str
    outpaint_ratio: float
    align_position: str


class SubmittedParams(Body):
    """The submission in task_submit's field names: send it back to draw again."""

    model_name: str
    versionid: int | str = Field(default="", description="as sent (it wins over model_name)")
    prompt: str
    neg_prompt: str
    n_images: int | None
    scale: float | int | None
    select_seed: int | None
    output_size: str
    ddim_steps: int | None
    strength: float | int | None
    init_img: str = Field(description="signed URL of the init image, or ''")
    add_prompt: bool
    lora_configs: list[ListedLora]
    cn_configs: list[ListedCn]
    outpaint_config: ListedOutpaint | None = Field(
        default=None, description="outpainting's source (signed URL), ratio and position")
    sampler_name: str = Field(default="", description="as asked ('' = the model's own)")
    scheduler: str = Field(default="", description="as asked ('' with no sampler_name)")
    # The hires fix; the hr_ fields are its own when enable_hr is true.
    enable_hr: bool = False
    hr_scale: float | None = None
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = None
    hr_denoising_strength: float | None = None


class ListedTask(Body):
    """Any task: what every item has."""

    task_id: str
    kind: str = Field(description="image or train")
    state: Status
    progress: float = Field(ge=0, le=1)
    error_msg: str
    create_time: str
    finish_time: str = Field(description="'' until it ends")


class ListedImageTask(ListedTask):
    """An image task: task_result's fields plus when, which model and the submission."""

    kind: Literal["image"] = "image"
    images: list[ListedImage]
    seed: int | None
    prompt: str | None
    task_type: str
    model: str
    params: SubmittedParams


class ListedUpscaleTask(ListedTask):
    """An upscale task (POST /api/v1b/upscale): its image, and what it upscaled how."""

    kind: Literal["upscale"] = "upscale"
    images: list[ListedImage]
    task_type: Literal["upscale"] = "upscale"
    upscaler: str
    scale: float
    source_img: str = Field(description="signed URL of the image it upscaled, or '' once "
                            "deleted")
    source_size: str


class ListedTrainTask(ListedTask):
    """A training task's summary; train_progress has the rest (loss, ETA, samples)."""

    kind: Literal["train"] = "train"
    model_name: str
    model_id: int | None
    base_model: str
    trigger_word: str
    main_body: str
    step: int
    total_steps: int


class TaskItems(ItemPage[ListedImageTask | ListedUpscaleTask | ListedTrainTask | ListedTask]):
    """task_list's page: ItemPage plus where the next one starts."""

    next_cursor: str = Field(description="send as cursor for the page after this one "
                             "(keyset paging); '' when there is none")


TaskPage = MiaohuaOk[TaskItems]
