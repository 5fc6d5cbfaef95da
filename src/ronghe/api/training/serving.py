"""Training requests: the HTTP side of the training domain (``ronghe.training.service``).

A ``train_submit`` body becomes its ``TrainRequest``; a training task and its catalog entry
become ``train_progress``'s answer.  The domain checks, creates and settles; nothing here
writes.
"""

from __future__ import annotations

from typing import Any

from ronghe.api.training.protocol import (
    PresetInfo,
    Sample,
    TrainForm,
    TrainProgress,
    TrainSubmit,
)
from ronghe.engines.training.presets import MAIN_BODIES, preset_for
from ronghe.errors import NotFound
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskView
from ronghe.services import Services
from ronghe.tasks.training import TrainJob, used_captions
from ronghe.training.service import Training

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class TrainingService:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.training = Training(services)

    def form(self) -> TrainForm:
        default = self.training.default_base()
        family = default.family if default else "demo"
        presets = {body: PresetInfo(**preset_for(family, body).to_dict())
                   for body in MAIN_BODIES}
        return TrainForm(base_model=[e.name for e in self.training.trainable()],
                         main_body=list(MAIN_BODIES),
                         default_base_model=default.name if default else None,
                         presets=presets)

    def submit(self, user_id: int, req: TrainSubmit) -> TaskView:
        return self.training.submit(user_id, req.to_request())

    def progress(self, user_id: int, task_id: str, base_url: str) -> TrainProgress:
        task = self.training.task(user_id, task_id)
        job = TrainJob.from_params(task.params)
        lora = self.training.lora_of(task)
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
            captions=used_captions(task.params, job.file_ids),
            select_seed=job.seed,
            wait_time=self.services.tasks.wait_time(task),
        )

    def cancel(self, user_id: int, task_id: str) -> TaskView:
        return self.training.cancel(user_id, task_id)

    def _sample(self, sample: dict[str, Any], user_id: int, base_url: str) -> Sample | None:
        try:
            info = self.services.files.get(str(sample["file_id"]), user_id)
        except NotFound:
            return None
        return Sample(step=sample["step"], url=self.services.files.url(info, base_url),
                      prompt=str(sample.get("prompt", "")))
