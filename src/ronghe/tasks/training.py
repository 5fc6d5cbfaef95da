"""The "train" task: from a task's parameters to a ready LoRA in the catalog.

It runs in whichever worker claims the task (the in-process worker or a Celery worker) and
reports through its context: real step/total progress, loss, ETA and preview samples go
to the task row, so ``train_progress`` reads them from the database like any other task.

Restarts: a checkpoint is written every ``checkpoint_every`` steps (and at least once a
minute) under ``<data_dir>/training/<task_id>/``, and also when the worker shuts down.  A
task whose worker died is claimed again (``task_max_attempts``) and this handler resumes
from that checkpoint, not from step 0.  The checkpoints go when the run ends here; those of
runs that ended elsewhere (failed by recovery, cancelled while pending) go when the next
training starts on this worker (``sweep``).

Interleaving: between steps the task calls ``ctx.yield_to_waiting()``, so image tasks
submitted while a LoRA trains run between two training steps instead of waiting minutes for
the whole training to end.  Chat never waits on training (it does not use the task worker).
"""

from __future__ import annotations

import io
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from PIL import Image

from ronghe.catalog.service import LoraState
from ronghe.engines.diffusion import families, output
from ronghe.engines.training.captions import training_caption
from ronghe.engines.training.history import LossHistory
from ronghe.engines.training.presets import Preset
from ronghe.errors import RongheError
from ronghe.jobs.runner import Cancelled, Shutdown
from ronghe.jobs.store import Lost
from ronghe.jobs.view import recalled
from ronghe.storage.files import FileService
from ronghe.tasks.context import TrainTaskContext
from ronghe.webhooks.request import PARAM as WEBHOOK
from ronghe.webhooks.request import Webhook

log = structlog.get_logger(__name__)

SAMPLE_KIND = "sample"
# At least this often a checkpoint is written, whatever checkpoint_every says.
CHECKPOINT_SECONDS = 60.0
# The memo key the training's captions are remembered under (file id -> caption).
CAPTIONS = "captions"
# Image tasks get a turn at most this often (checking for them costs a query).
YIELD_SECONDS = 1.0


@dataclass(frozen=True)
class TrainJob:
    """What train_submit fixes when it creates the task; a rerun trains exactly this."""

    lora_id: int
    name: str
    base_model: str
    family: str
    trigger_word: str
    main_body: str
    file_ids: list[str]
    preset: dict[str, Any]
    seed: int
    # Prompts the previews render; none: the first image's training caption.
    sample_prompts: list[str] = field(default_factory=list)
    # Stored beside the input, where the outbox reads it (``webhooks.request.PARAM``).
    webhook: Webhook | None = None

    def to_params(self) -> dict[str, Any]:
        params = asdict(replace(self, webhook=None))
        del params[WEBHOOK]  # left out when absent, as before it was typed
        if self.webhook is not None:
            params[WEBHOOK] = self.webhook.to_param()
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainJob:
        # Fields added later have defaults, so tasks submitted before them still load.
        known = {k: params[k] for k in cls.__dataclass_fields__ if k in params}
        known[WEBHOOK] = Webhook.from_params(params)
        return cls(**known)


def work_root(data_dir: Path) -> Path:
    return Path(data_dir) / "training"


def work_dir(data_dir: Path, task_id: str) -> Path:
    return work_root(data_dir) / task_id


def weights_prefix(user_id: int, lora_id: int) -> str:
    return f"u{user_id}/lora/{lora_id}"


def sample_file_id(task_id: str, step: int, index: int = 0) -> str:
    # Deterministic, so a rerun that renders the same step again overwrites its own file.
    name = f"ronghe-train:{task_id}:{step}" + (f":{index}" if index else "")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def run(ctx: TrainTaskContext) -> dict[str, Any]:
    job = TrainJob.from_params(ctx.params)
    sweep(ctx)
    folder = ctx.work_root / ctx.task.id
    try:
        result = _train(ctx, job, folder)
    except (Shutdown, Lost):
        raise  # the task runs again (or already runs elsewhere); keep the checkpoint
    except Cancelled:
        ctx.loras.update(job.lora_id, state=LoraState.CANCELLED.value)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except Exception as exc:
        reason = exc.msg if isinstance(exc, RongheError) else f"{type(exc).__name__}: {exc}"
        ctx.loras.update(job.lora_id, state=LoraState.FAILED.value,
                              meta={"error": reason[:500], "task_id": ctx.task.id})
        shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    return result


def sweep(ctx: TrainTaskContext) -> None:
    """Remove the checkpoints this worker holds of runs that will never resume: they ended
    without their handler (failed after repeated worker crashes, cancelled while pending)."""
    if not ctx.work_root.is_dir():
        return
    others = [p.name for p in ctx.work_root.iterdir() if p.is_dir() and p.name != ctx.task.id]
    for task_id in ctx.ended(others):
        log.info("removing the checkpoints of an ended training", task_id=task_id)
        shutil.rmtree(ctx.work_root / task_id, ignore_errors=True)


def used_captions(params: dict[str, Any], file_ids: list[str]) -> list[str]:
    """The captions a training used, in image order (remembered once it has captioned
    them; empty before)."""
    used = recalled(params, CAPTIONS)
    if not isinstance(used, dict):
        return []
    return [str(used[fid]) for fid in file_ids if fid in used]


def _load_images(files: FileService, user_id: int,
                 file_ids: list[str]) -> list[tuple[str, Image.Image]]:
    images = []
    for file_id in file_ids:
        try:
            info = files.get(file_id, user_id)
            image = Image.open(io.BytesIO(files.read(info)))
            image.load()
        except (RongheError, FileNotFoundError, OSError):
            # Deleted since submit: train on what is left rather than fail the whole run.
            log.warning("training image missing", file_id=file_id)
            continue
        images.append((file_id, image))
    if not images:
        raise RongheError("every image of the selected datasets was deleted before training")
    return images


def _train(ctx: TrainTaskContext, job: TrainJob, folder: Path) -> dict[str, Any]:
    import torch

    from ronghe.engines.cpu import budget
    from ronghe.engines.training.lora import LoraTrainer

    preset = Preset.from_dict(job.preset)
    total = preset.steps
    # A rerun keeps showing where the last attempt got to until it has resumed.
    before = {"step": 0, "total_steps": total, **(ctx.task.detail or {}), "phase": "loading"}
    ctx.progress(ctx.task.progress, before, force=True)
    entry = ctx.models.get(job.base_model, "base_model")
    ctx.models.check(entry, "base_model")
    pairs = _load_images(ctx.files, ctx.task.user_id, job.file_ids)
    images = [image for _, image in pairs]
    with budget.lease("torch") as threads:
        torch.set_num_threads(threads)
        captions = _captions(ctx, job, pairs)
        trainer = LoraTrainer(entry.path, preset, job.seed, family=job.family,
                              device=ctx.device, dtype=ctx.dtype)
        log.info("training starts", task_id=ctx.task.id, family=job.family,
                 device=ctx.device, precision=trainer.precision.describe())
        trainer.prepare(images, captions, lambda i, n: ctx.check())
        extra = trainer.load_checkpoint(folder) or {}
        run = _Run(ctx, job, trainer, folder, extra.get("samples", []), trainer.step)
        run.prompts = captions[:1]
        run.loop()
        return run.finish(captions[0], len(images))


def _captions(ctx: TrainTaskContext, job: TrainJob,
              pairs: list[tuple[str, Image.Image]]) -> list[str]:
    """Each image's caption: remembered by an earlier attempt, else built from the user's
    caption or the captioner's (cached per file, so each image is captioned once)."""
    remembered = ctx.recall(CAPTIONS)
    if isinstance(remembered, dict) and all(fid in remembered for fid, _ in pairs):
        return [str(remembered[fid]) for fid, _ in pairs]
    known = ctx.datasets.captions([fid for fid, _ in pairs])
    captioner = ctx.captioner
    by = str(getattr(captioner, "name", type(captioner).__name__)) if captioner else ""
    used: dict[str, str] = {}
    for number, (fid, image) in enumerate(pairs):
        cached = known.get(fid)
        if cached is not None and cached.user:
            used[fid] = training_caption(job.trigger_word, job.main_body, cached.user, True)
            continue
        text = cached.auto if cached is not None and cached.auto_by == by else None
        if text is None and captioner is not None:
            ctx.progress(0.0, {"phase": "captioning", "step": 0, "captioned": number,
                               "images": len(pairs)})
            text = captioner(image)
            ctx.datasets.cache_auto_caption(fid, text, by)
        used[fid] = training_caption(job.trigger_word, job.main_body, text)
    ctx.remember(CAPTIONS, used)
    return [used[fid] for fid, _ in pairs]


class _Run:
    """The training loop of one attempt, with its progress, samples and checkpoints."""

    def __init__(self, ctx: TrainTaskContext, job: TrainJob, trainer: Any, folder: Path,
                 samples: list[dict[str, Any]], resumed_from: int) -> None:
        self.ctx = ctx
        self.job = job
        self.trainer = trainer
        self.preset: Preset = trainer.preset
        self.folder = folder
        self.samples = samples
        self.resumed_from = resumed_from
        # A resumed run's checkpoint holds every loss so far: its curve starts where it was.
        self.history = LossHistory(trainer.losses)
        self.prompts: list[str] = []
        self.started = time.monotonic()
        self.last_checkpoint = time.monotonic()
        self.last_yield = time.monotonic()
        if resumed_from:
            log.info("training resumed from checkpoint", task_id=ctx.task.id,
                     step=resumed_from)

    def detail(self, phase: str) -> dict[str, Any]:
        step, total = self.trainer.step, self.preset.steps
        done_here = step - self.resumed_from
        per_step = (time.monotonic() - self.started) / done_here if done_here else None
        recent = self.trainer.losses[-10:]
        return {
            "phase": phase, "step": step, "total_steps": total,
            "loss": round(sum(recent) / len(recent), 6) if recent else None,
            "eta_seconds": round(per_step * (total - step), 1) if per_step else None,
            "samples": self.samples, "resumed_from_step": self.resumed_from,
            "loss_history": self.history.points(),
        }

    def checkpoint(self) -> None:
        self.trainer.save_checkpoint(self.folder, {"samples": self.samples})
        self.last_checkpoint = time.monotonic()

    def sample(self) -> None:
        step = self.trainer.step
        # The user's preview prompts, else the first training caption: previews show what
        # a prompt with the trigger gives as training goes on.
        prompts = self.job.sample_prompts or self.prompts
        self.samples = [s for s in self.samples if s["step"] != step]
        for index, prompt in enumerate(prompts):
            image = self.trainer.sample(prompt, seed=self.job.seed)
            out = io.BytesIO()
            # Like every PNG Ronghe writes, it carries A1111's parameters text.
            text = output.a1111_text({"prompt": prompt, "seed": self.job.seed,
                                      "width": image.width, "height": image.height,
                                      "model": self.job.base_model,
                                      "loras": [{"name": self.job.name, "weight": 1.0}]})
            image.save(out, format="PNG", pnginfo=output.png_info(text))
            info = self.ctx.files.save(
                self.ctx.task.user_id, out.getvalue(), "image/png", SAMPLE_KIND, image.width,
                image.height, file_id=sample_file_id(self.ctx.task.id, step, index))
            self.samples.append({"step": step, "file_id": info.id, "prompt": prompt})

    def loop(self) -> None:
        preset, trainer = self.preset, self.trainer
        try:
            self.ctx.progress(trainer.step / preset.steps, self.detail("training"), force=True)
            while trainer.step < preset.steps:
                loss = trainer.train_step()
                self.history.add(loss)
                step = trainer.step
                if step % preset.sample_every == 0 or step == preset.steps:
                    self.sample()
                if (step % preset.checkpoint_every == 0
                        or time.monotonic() - self.last_checkpoint > CHECKPOINT_SECONDS):
                    self.checkpoint()
                    log.info("training", task_id=self.ctx.task.id, step=step,
                             total=preset.steps, loss=round(loss, 5))
                self.ctx.progress(step / preset.steps, self.detail("training"))
                if time.monotonic() - self.last_yield > YIELD_SECONDS:
                    self.ctx.yield_to_waiting()
                    self.last_yield = time.monotonic()
        except Shutdown:
            # A graceful stop keeps every finished step, not just the last periodic ones.
            self.checkpoint()
            raise

    def finish(self, caption: str, image_count: int) -> dict[str, Any]:
        from ronghe.engines.training.export import export_files

        ctx, job, trainer = self.ctx, self.job, self.trainer
        self.ctx.progress(1.0, self.detail("saving"), force=True)
        prefix = weights_prefix(self.ctx.task.user_id, job.lora_id)
        losses = trainer.losses
        sidecar = {
            "format": "ronghe-lora/1", "name": job.name, "base_model": job.base_model,
            "family": job.family, "trigger_word": job.trigger_word,
            "main_body": job.main_body, "caption": caption, "rank": self.preset.rank,
            "alpha": self.preset.alpha, "steps": trainer.step,
            "learning_rate": self.preset.learning_rate, "batch_size": self.preset.batch_size,
            "resolution": self.preset.resolution, "seed": job.seed, "images": image_count,
            "target_modules": list(families.get(job.family).lora_targets),
            "precision": trainer.precision.describe(), "buckets": trainer.bucket_summary,
            "final_loss": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 6),
            "train_seconds": round(trainer.elapsed, 1), "task_id": self.ctx.task.id,
        }
        files = export_files(trainer.lora_state_dict(), trainer.lora_config(),
                             self.preset.alpha, sidecar, family=job.family)
        for name, data in files.items():
            ctype = "application/json" if name.endswith(".json") else "application/octet-stream"
            ctx.files.storage.put(f"{prefix}/{name}", data, ctype)
        demo = self.samples[-1]["file_id"] if self.samples else None
        self.ctx.check()  # a cancel that arrived while saving wins over "ready"
        meta = {k: sidecar[k] for k in ("rank", "alpha", "steps", "trigger_word", "caption",
                                         "learning_rate", "resolution", "images",
                                         "final_loss", "train_seconds", "family")}
        ctx.loras.update(job.lora_id, state=LoraState.READY.value, weights_key=prefix,
                              demo_file_id=demo, meta={**meta, "files": sorted(files)})
        log.info("training done", task_id=self.ctx.task.id, lora_id=job.lora_id,
                 steps=trainer.step, loss=sidecar["final_loss"])
        return {"lora_id": job.lora_id, "model_name": job.name, "weights_key": prefix,
                "steps": trainer.step, "loss": sidecar["final_loss"],
                "samples": self.samples, "resumed_from_step": self.resumed_from}
