"""LoRA training, apart from HTTP: which models train, a request checked into a ``TrainJob``
and its task, reads of a training, and cancel.

The task row is the truth about a training run (state, progress, step, loss, samples); the
LoRA catalog entry is what generation uses once it is ``ready``.  The training task
(``ronghe.tasks.training``) settles the entry when it ends, and cleans up its checkpoints.
A run can also end without its handler (failed by recovery after repeated worker crashes,
cancelled while still pending): ``ronghe.training.settle`` settles the entry then, in the
transaction that ends the task, and the next training on the worker removes the run's
checkpoints.  Reads (``task``, ``lora_of``) change nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import replace

from ronghe.catalog.service import LoraInfo, LoraState
from ronghe.engines.diffusion.registry import ModelEntry
from ronghe.engines.training.presets import MAIN_BODIES, TRAINABLE_FAMILIES, preset_for
from ronghe.errors import BadRequest, Conflict, NotFound
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskView
from ronghe.queues import Kind, Queue
from ronghe.services import Services
from ronghe.tasks.training import TrainJob
from ronghe.training.request import AUTO_BASE_MODEL, TrainRequest
from ronghe.webhooks.request import task_webhook

# Entries in these states no longer hold their name: submitting the name again replaces them.
REPLACEABLE = (LoraState.FAILED, LoraState.CANCELLED)
# A requested training resolution is a multiple of this.
RESOLUTION_STEP = 16


class Training:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.datasets = services.datasets
        self.registry = services.image_models

    # --- the models

    def trainable(self) -> list[ModelEntry]:
        # The trainer loads diffusers folders; single-file checkpoints are for generation only.
        return [e for e in self.registry.entries()
                if e.spec.trainable and e.family in TRAINABLE_FAMILIES and not e.single_file]

    def default_base(self) -> ModelEntry | None:
        models = self.trainable()
        preferred = self.registry.find(self.registry.default_name)
        return preferred if preferred in models else (models[0] if models else None)

    # --- submit

    def submit(self, user_id: int, req: TrainRequest) -> TaskView:
        main_body = _main_body(req.main_body)
        entry = self._base_model(req.base_model)
        name = req.name
        if self.registry.find(name) is not None:
            raise BadRequest(f"name: {name!r} is the name of a base model; choose another",
                             field="name")
        file_ids = self._images(user_id, req.dataset)
        events = req.webhook_events_filter
        hook = task_webhook(self.services, user_id, req.webhook, req.callback_url,
                            list(events) if events is not None else None)
        preset = preset_for(entry.family, main_body)
        if req.resolution is not None and req.resolution % RESOLUTION_STEP:
            # FLUX packs 2x2 patches of the 8x-downsampled latents: sides of 16 px fit all.
            raise BadRequest(f"resolution: must be a multiple of {RESOLUTION_STEP} "
                             f"(got {req.resolution})", field="resolution")
        overrides = {k: v for k, v in (("steps", req.steps), ("rank", req.rank),
                                       ("learning_rate", req.learning_rate),
                                       ("resolution", req.resolution)) if v is not None}
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
                       sample_prompts=[" ".join(p.split()) for p in req.sample_prompts],
                       webhook=hook)
        try:
            task = self.services.tasks.create(user_id, Kind.TRAIN.value, Queue.TRAINING.value,
                                              job.to_params(), task_id=task_id)
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
        existing = self.settle(existing)
        if existing.state not in REPLACEABLE:
            raise Conflict(f"name: you already have a model named {name!r} (state "
                           f"{existing.state}); choose another name", field="name")
        self.services.loras.delete(existing.id)

    # --- reads and cancel

    def task(self, user_id: int, task_id: str) -> TaskView:
        """One of the user's training tasks; reading it changes nothing."""
        task = self.services.tasks.get(task_id, user_id)
        if task.kind != Kind.TRAIN:
            raise NotFound(f"task {task_id[:64]!r} is not a training task", field="task_id")
        return task

    def lora_of(self, task: TaskView) -> LoraInfo | None:
        return self.services.loras.by_task(task.id)

    def cancel(self, user_id: int, task_id: str) -> TaskView:
        self.task(user_id, task_id)
        task = self.services.tasks.request_cancel(task_id, user_id)
        lora = self.services.loras.by_task(task.id)
        if lora is not None:
            self.settle(lora, task)
        return task

    def settle(self, lora: LoraInfo, task: TaskView | None = None) -> LoraInfo:
        """An entry still 'training' whose task ended without the handler saying so, as
        ``settle.on_task_change`` settles it (for runs that ended before it did): a write
        path's step, before the entry's state decides something."""
        if lora.state != LoraState.TRAINING or not lora.task_id:
            return lora
        if task is None:
            try:
                task = self.services.tasks.get(lora.task_id)
            except NotFound:
                return self.services.loras.update(lora.id, state=LoraState.FAILED.value)
        if task.state in (Status.FAILED, Status.CANCELLED):
            return self.services.loras.update(lora.id, state=task.state.value)
        return lora


def _main_body(value: str) -> str:
    for body in MAIN_BODIES:
        if value.lower() == body.lower():
            return body
    raise BadRequest(f"main_body must be one of {', '.join(MAIN_BODIES)} (got {value!r})",
                     field="main_body")
