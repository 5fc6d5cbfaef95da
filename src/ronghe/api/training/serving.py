"""Training requests: validate a submission, create the LoRA entry and its task, report them.

The task row is the truth about a training run (state, progress, step, loss, samples); the
LoRA catalog entry is what generation uses once it is ``ready``.  ``train_progress`` also
repairs an entry left ``training`` by a run that ended without its handler (a task failed by
recovery after repeated worker crashes, or cancelled while still pending).
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ronghe.api.training.protocol import (
    AUTO_BASE_MODEL,
    PresetInfo,
    Sample,
    TrainForm,
    TrainProgress,
    TrainSubmit,
)
from ronghe.catalog.service import LoraInfo, LoraState
from ronghe.engines.diffusion.registry import ModelEntry
from ronghe.engines.training.presets import MAIN_BODIES, TRAINABLE_FAMILIES, preset_for
from ronghe.errors import BadRequest, Conflict, NotFound
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskView
from ronghe.queues import Kind, Queue
from ronghe.services import Services
from ronghe.tasks.training import CAPTIONS, TrainJob, work_dir
from ronghe.webhooks.request import PARAM as WEBHOOK
from ronghe.webhooks.request import task_webhook

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Entries in these states no longer hold their name: submitting the name again replaces them.
REPLACEABLE = (LoraState.FAILED, LoraState.CANCELLED)


class TrainingService:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.datasets = services.datasets
        self.registry = services.image_models

    # --- the form

    def trainable(self) -> list[ModelEntry]:
        # The trainer loads diffusers folders; single-file checkpoints are for generation only.
        return [e for e in self.registry.entries()
                if e.spec.trainable and e.family in TRAINABLE_FAMILIES and not e.single_file]

    def default_base(self) -> ModelEntry | None:
        models = self.trainable()
        preferred = self.registry.find(self.registry.default_name)
        return preferred if preferred in models else (models[0] if models else None)

    def form(self) -> TrainForm:
        default = self.default_base()
        family = default.family if default else "demo"
        presets = {body: PresetInfo(**preset_for(family, body).to_dict())
                   for body in MAIN_BODIES}
        return TrainForm(base_model=[e.name for e in self.trainable()],
                         main_body=list(MAIN_BODIES),
                         default_base_model=default.name if default else None,
                         presets=presets)

    # --- submit

    def submit(self, user_id: int, req: TrainSubmit) -> TaskView:
        main_body = _main_body(req.main_body)
        entry = self._base_model(req.base_model)
        name = req.name
        if self.registry.find(name) is not None:
            raise BadRequest(f"name: {name!r} is the name of a base model; choose another",
                             field="name")
        file_ids = self._images(user_id, req.dataset)
        hook = task_webhook(self.services, user_id, req.webhook, req.callback_url,
                            req.webhook_events_filter)
        preset = preset_for(entry.family, main_body)
        overrides = {k: v for k, v in (("steps", req.steps), ("rank", req.rank),
                                       ("learning_rate", req.learning_rate)) if v is not None}
        preset = replace(preset, **overrides)
        seed = req.seed if req.seed is not None else random.randrange(2**31)
        self._free_name(user_id, name)
        task_id = str(uuid.uuid4())
        lora = self.services.loras.create(
            user_id, name, entry.name, description=req.description,
            trigger_word=req.trigger_word, main_body=main_body, nsfw=bool(req.nsfw),
            task_id=task_id)
        job = TrainJob(lora_id=lora.id, name=name, base_model=entry.name, family=entry.family,
                       trigger_word=req.trigger_word, main_body=main_body, file_ids=file_ids,
                       preset=preset.to_dict(), seed=seed,
                       sample_prompts=[" ".join(p.split()) for p in req.sample_prompts])
        params = job.to_params()
        if hook is not None:
            params[WEBHOOK] = hook
        try:
            task = self.services.tasks.create(user_id, Kind.TRAIN.value, Queue.TRAINING.value,
                                              params, task_id=task_id)
        except Exception:
            self.services.loras.delete(lora.id)
            raise
        assert self.services.dispatcher is not None  # the app sets it before serving
        self.services.dispatcher.submit(task)
        return task

    def _base_model(self, requested: str) -> ModelEntry:
        trainable = self.trainable()
        if requested in (AUTO_BASE_MODEL, "auto"):
            entry = self.default_base()
            if entry is None:
                raise BadRequest("base_model: no trainable base model is configured",
                                 field="base_model")
        else:
            entry = self.registry.find(requested)
            if entry is None or entry not in trainable:
                names = ", ".join([AUTO_BASE_MODEL, *(e.name for e in trainable)])
                raise BadRequest(f"base_model must be one of {names} (got {requested!r})",
                                 field="base_model")
        self.registry.check(entry, "base_model")
        return entry

    def _images(self, user_id: int, dataset_ids: Iterable[int]) -> list[str]:
        file_ids: dict[str, None] = {}
        for index, dataset_id in enumerate(dataset_ids):
            field = f"dataset[{index}]"
            try:
                dataset = self.datasets.get(dataset_id, user_id, field)
            except NotFound as exc:
                raise BadRequest(exc.msg, field=field) from None
            if not dataset.images:
                raise BadRequest(f"{field}: dataset {dataset_id} ({dataset.name!r}) has no "
                                 "images; add some with dataset/add_images", field=field)
            file_ids.update(dict.fromkeys(i.id for i in dataset.images))
        return list(file_ids)

    def _free_name(self, user_id: int, name: str) -> None:
        existing = self.services.loras.find(user_id, name)
        if existing is None:
            return
        existing = self._reconcile(existing)
        if existing.state not in REPLACEABLE:
            raise Conflict(f"name: you already have a model named {name!r} (state "
                           f"{existing.state}); choose another name", field="name")
        self.services.loras.delete(existing.id)

    # --- progress and cancel

    def task(self, user_id: int, task_id: str) -> TaskView:
        task = self.services.tasks.get(task_id, user_id)
        if task.kind != Kind.TRAIN:
            raise NotFound(f"task {task_id[:64]!r} is not a training task", field="task_id")
        return task

    def progress(self, user_id: int, task_id: str, base_url: str) -> TrainProgress:
        task = self.task(user_id, task_id)
        job = TrainJob.from_params(task.params)
        lora = self.services.loras.by_task(task.id)
        if lora is not None:
            lora = self._reconcile(lora, task)
        detail = task.detail or {}
        samples = [self._sample(s, user_id, base_url) for s in detail.get("samples", [])]
        samples = [s for s in samples if s is not None]
        total = int(job.preset["steps"])
        done = task.state is Status.DONE
        return TrainProgress(
            task_id=task.id,
            create_time=task.created_at.strftime(TIME_FORMAT),
            description=lora.description if lora else "",
            main_body=job.main_body,
            model_name=job.name,
            model_id=job.lora_id,
            base_model=job.base_model,
            state=task.state,
            training_progress=1.0 if done else round(task.progress, 4),
            trigger_word=job.trigger_word,
            nsfw=int(lora.nsfw) if lora else 0,
            error_msg=task.error_msg,
            step=total if done else int(detail.get("step", 0)),
            total_steps=total,
            loss=detail.get("loss"),
            loss_history=detail.get("loss_history", []),
            eta_seconds=0 if done else detail.get("eta_seconds"),
            phase=task.state.value if task.state is not Status.RUNNING
            else detail.get("phase", "loading"),
            resumed_from_step=detail.get("resumed_from_step", 0),
            preview_images=[s.url for s in samples],
            samples=samples,
            captions=_captions(task.params, job.file_ids),
            select_seed=job.seed,
            wait_time=self.services.tasks.wait_time(task),
        )

    def cancel(self, user_id: int, task_id: str) -> TaskView:
        self.task(user_id, task_id)
        task = self.services.tasks.request_cancel(task_id, user_id)
        lora = self.services.loras.by_task(task.id)
        if lora is not None:
            self._reconcile(lora, task)
        return task

    def _sample(self, sample: dict[str, Any], user_id: int, base_url: str) -> Sample | None:
        try:
            info = self.services.files.get(str(sample["file_id"]), user_id)
        except NotFound:
            return None
        return Sample(step=sample["step"], url=self.services.files.url(info, base_url),
                      prompt=str(sample.get("prompt", "")))

    def _reconcile(self, lora: LoraInfo, task: TaskView | None = None) -> LoraInfo:
        """An entry still 'training' whose task ended without the handler saying so."""
        if lora.state != LoraState.TRAINING or not lora.task_id:
            return lora
        if task is None:
            try:
                task = self.services.tasks.get(lora.task_id)
            except NotFound:
                return self.services.loras.update(lora.id, state=LoraState.FAILED.value)
        if task.state in (Status.FAILED, Status.CANCELLED):
            # Its checkpoints can never be resumed now.
            shutil.rmtree(work_dir(self.services.settings.data_dir, task.id),
                          ignore_errors=True)
            return self.services.loras.update(lora.id, state=task.state.value)
        return lora


def _captions(params: dict[str, Any], file_ids: list[str]) -> list[str]:
    """The captions the training used, in image order (set once it has captioned them)."""
    used = params.get(CAPTIONS)
    if not isinstance(used, dict):
        return []
    return [str(used[fid]) for fid in file_ids if fid in used]


def _main_body(value: str) -> str:
    for body in MAIN_BODIES:
        if value.lower() == body.lower():
            return body
    raise BadRequest(f"main_body must be one of {', '.join(MAIN_BODIES)} (got {value!r})",
                     field="main_body")

