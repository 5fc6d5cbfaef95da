"""task_list: a user's tasks, newest first, a page at a time (the web app's gallery).

A page costs three reads whatever its size and depth: an index-only count, the page of
tasks (in index order, no sort; by page number through the index's ids, or after a cursor
by one seek: ronghe.jobs.paging), and one batched lookup of every file the page shows
(images, init and control images).
Image items are ``task_result``'s shape plus ``params``, the task's ``ImageJob`` in
``task_submit``'s own field names, so a client can send it back as it is ("use these settings
again").
"""

from __future__ import annotations

from datetime import datetime

from ronghe.api.envelopes import miaohua_ok
from ronghe.api.images import cursors, serving
from ronghe.api.images.listing_protocol import (
    ListedCn,
    ListedCnProcessor,
    ListedImageTask,
    ListedLora,
    ListedOutpaint,
    ListedTask,
    ListedTrainTask,
    ListedUpscaleTask,
    SubmittedParams,
    TaskItems,
    TaskPage,
)
from ronghe.api.images.protocol import TaskListRequest
from ronghe.db.models import User
from ronghe.errors import BadRequest
from ronghe.images.job import ImageJob, UpscaleJob
from ronghe.jobs import Status, TaskView
from ronghe.jobs.paging import Position
from ronghe.queues import Kind
from ronghe.services import Services
from ronghe.storage.files import FileInfo
from ronghe.tasks.training import TrainJob

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# None: every kind, which lets the database walk the user's tasks in index order.
KINDS: dict[str, tuple[str, ...] | None] = {
    "image": (Kind.IMAGE.value, Kind.UPSCALE.value), "train": (Kind.TRAIN.value,),
    "all": None}


def stamp(moment: datetime | None) -> str:
    return moment.strftime(TIME_FORMAT) if moment else ""


def submitted_params(services: Services, job: ImageJob, files: dict[str, FileInfo],
                     base_url: str) -> SubmittedParams:
    """The task's job as a task_submit body."""

    def url(file_id: str | None) -> str:
        info = files.get(file_id) if file_id else None
        return services.files.url(info, base_url) if info else ""

    loras = list(job.loras)
    named = job.versionid or job.model_name
    if loras and named in (loras[0].name, loras[0].id, str(loras[0].id)):
        loras = loras[1:]  # implied by the model's name (a trained LoRA); not a config unit
    outpaint = job.outpaint
    return SubmittedParams(
        model_name=job.model_name or job.model, versionid=job.versionid, prompt=job.prompt,
        neg_prompt=job.neg_prompt, n_images=job.n_images, scale=job.scale,
        select_seed=job.seed, output_size=f"{job.width}x{job.height}", ddim_steps=job.steps,
        strength=job.strength, init_img=url(job.init_file_id), add_prompt=job.add_prompt,
        lora_configs=[ListedLora(versionid=x.id, merge_weight=x.weight, name=x.name)
                      for x in loras],
        cn_configs=[ListedCn(cn=c.cn, weight=c.weight, guidance_start=c.start,
                             guidance_end=c.end, img=url(c.file_id),
                             config=ListedCnProcessor(control_processor=c.processor,
                                                      low_threshold=c.low,
                                                      high_threshold=c.high,
                                                      down_sample_rate=c.rate))
                    for c in job.controls],
        outpaint_config=outpaint and ListedOutpaint(
            src_img=url(outpaint.file_id), outpaint_ratio=outpaint.outpaint_ratio,
            align_position=outpaint.align_position),
        sampler_name=job.sampler_name, scheduler=job.scheduler,
        **({"enable_hr": True, "hr_scale": job.hires.scale, "hr_upscaler": job.hires.upscaler,
            "hr_second_pass_steps": job.hires.steps,
            "hr_denoising_strength": job.hires.denoise} if job.hires else {}),
    )


def image_item(services: Services, task: TaskView, job: ImageJob,
               files: dict[str, FileInfo], base_url: str) -> ListedImageTask:
    fields = serving.result_fields(services, task, base_url, live=False)
    images = [{**image, "task_id": task.id, "task_type": fields["task_type"]}
              for image in serving.image_urls(services, task, base_url, files)]
    return ListedImageTask(images=images, **fields, create_time=stamp(task.created_at),
                           finish_time=stamp(task.finished_at), model=job.model,
                           params=submitted_params(services, job, files, base_url))


def upscale_item(services: Services, task: TaskView, job: UpscaleJob,
                 files: dict[str, FileInfo], base_url: str) -> ListedUpscaleTask:
    fields = serving.result_fields(services, task, base_url, live=False)
    images = [{**image, "task_id": task.id, "task_type": job.task_type}
              for image in serving.image_urls(services, task, base_url, files)]
    source = files.get(job.file_id)
    return ListedUpscaleTask(
        task_id=task.id, state=task.state, progress=fields["progress"],
        error_msg=fields["error_msg"], create_time=stamp(task.created_at),
        finish_time=stamp(task.finished_at), images=images, upscaler=job.upscaler,
        scale=job.scale, source_img=services.files.url(source, base_url) if source else "",
        source_size="{}x{}".format(*job.source_size))


def train_item(task: TaskView) -> ListedTrainTask:
    """The listing's summary; train_progress has the rest (loss, ETA, samples)."""
    job, detail = TrainJob.from_params(task.params), task.detail or {}
    total = int(job.preset.get("steps", 0))
    done = task.state is Status.DONE
    return ListedTrainTask(
        task_id=task.id, state=task.state,
        progress=1.0 if done else round(task.progress, 4), error_msg=task.error_msg,
        create_time=stamp(task.created_at), finish_time=stamp(task.finished_at),
        model_name=job.name, model_id=job.lora_id, base_model=job.base_model,
        trigger_word=job.trigger_word, main_body=job.main_body,
        step=total if done else int(detail.get("step", 0)), total_steps=total,
    )


def other_item(task: TaskView) -> ListedTask:
    return ListedTask(task_id=task.id, kind=task.kind, state=task.state,
                      progress=round(task.progress, 4), error_msg=task.error_msg,
                      create_time=stamp(task.created_at), finish_time=stamp(task.finished_at))


def task_list(services: Services, user: User, body: TaskListRequest,
              base_url: str) -> TaskPage:
    """By page number or, given ``cursor``, after where a previous page ended (keyset):
    the same order and items either way, each at a cost flat in depth (jobs/paging.py)."""
    state = Status(body.state) if body.state else None
    if body.cursor and "page" in body.model_fields_set:
        raise BadRequest("cursor: give cursor or page, not both", field="cursor")
    after = cursors.decode(body.cursor) if body.cursor else None
    found = services.tasks.listing(user.id, KINDS[body.kind], state,
                                   (body.page - 1) * body.per_page, body.per_page, after)
    tasks, total = found.tasks, found.total
    jobs = {t.id: ImageJob.from_params(t.params) for t in tasks if t.kind == Kind.IMAGE.value}
    upscales = {t.id: UpscaleJob.from_params(t.params) for t in tasks
                if t.kind == Kind.UPSCALE.value}
    wanted = [f for t in tasks if t.id in jobs
              for f in (*serving.file_ids(t), *jobs[t.id].file_ids)]
    wanted += [f for t in tasks if t.id in upscales
               for f in (*serving.file_ids(t), upscales[t.id].file_id)]
    files = services.files.get_many(wanted, user.id)
    items: list[ListedImageTask | ListedUpscaleTask | ListedTrainTask | ListedTask] = [
        image_item(services, t, jobs[t.id], files, base_url) if t.id in jobs
        else upscale_item(services, t, upscales[t.id], files, base_url) if t.id in upscales
        else train_item(t) if t.kind == Kind.TRAIN.value else other_item(t) for t in tasks]
    has_next = found.before + len(tasks) < total
    # After a cursor, the page is the one the cursor's position falls in now.
    page = body.page if after is None else found.before // body.per_page + 1
    return miaohua_ok(TaskItems(
        items=items, page=page, per_page=body.per_page, total=total, has_next=has_next,
        has_prev=found.before > 0,
        next_cursor=cursors.encode(Position.of(tasks[-1])) if has_next and tasks else ""))
