"""The image task: a checked ``ImageJob`` in (``ronghe.images.job``), stored images out
(JPEG, PNG or WebP, as the job's ``output_format`` says).

Everything the job needs is in the task row (checked at submit by ``ronghe.images.submit``,
the seed already chosen), so a task re-run after a crash produces the same images, and
writes them under the same file ids (derived from the task id), replacing any partial output.

``run`` reads as numbered steps, like a diffusers pipeline's ``__call__``.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image
from safetensors.torch import load as load_safetensors

from ronghe.catalog.service import LoraCatalog, LoraInfo
from ronghe.engines.diffusion import masking, outpaint
from ronghe.engines.diffusion.generate import ControlUnit, GenerationRequest, GenerationResult
from ronghe.engines.diffusion.infotext import lora_hash, short_hash
from ronghe.engines.diffusion.output import FORMATS, encode_variants
from ronghe.engines.diffusion.pipelines import LoraSource
from ronghe.engines.diffusion.registry import ModelEntry
from ronghe.errors import BadRequest, NotFound, NotReady
from ronghe.images.job import ImageJob, Lora, Mask
from ronghe.jobs.previews import PreviewSaver
from ronghe.jobs.runner import Cancelled, Shutdown
from ronghe.storage.files import FileService
from ronghe.tasks import upscale as upscaling
from ronghe.tasks.context import ImageTaskContext
from ronghe.tasks.metrics import ImageMetrics

LORA_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
# Share of the progress bar spent before denoising starts (prompt rewrite, loading).
PREPARE_SHARE = 0.05
# Memo key of add_prompt's decided prompt (see enriched_prompt).
ENRICHED = "enriched_prompt"


def output_file_id(task_id: str, index: int, variant: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ronghe:image:{task_id}:{index}:{variant}"))


def run(ctx: ImageTaskContext) -> dict[str, Any]:
    job = ImageJob.from_params(ctx.params)
    with counted(ctx.metrics, job.model):
        # 1. The model still usable (files present, not marked broken since submit).
        entry = ctx.engine.registry.get(job.model)
        ctx.engine.registry.check(entry)
        # 2. add_prompt: the chat model adds visual details to the prompt.
        used_prompt = job.prompt
        if job.add_prompt:
            used_prompt = enriched_prompt(ctx)
        # 3. The inputs: init image, control images, LoRA weights.
        ctx.progress(0.01, {"stage": "loading"})
        prepared = mask_inputs(ctx, job)
        request = build_request(ctx, job, entry.name, used_prompt, prepared)
        # 4. Denoise, reporting every step (a cancel stops at the next one).
        result = generate(ctx, request)
        ctx.check()  # a cancel during the last step must not be overwritten by a result
        if prepared is not None:  # the painted images back into the init image
            result.images = [masking.finish(im, prepared) for im in result.images]
        # 5. Encode each image in three sizes with its metadata, and store them.
        ctx.progress(1 - PREPARE_SHARE, {"stage": "saving"})
        images = save_images(ctx, job, result, request, used_prompt, model_hash(entry),
                             lora_hashes(ctx.files, ctx.loras, job.loras))
        # 6. The task's result, as task_result reports it.
        return {
            "images": images, "seed": job.seed, "seeds": request.seeds,
            "prompt": used_prompt, "original_prompt": job.prompt, "model": entry.name,
            "render_size": _size(result), "resized": result.resized,
            "steps_run": result.steps_run, "seconds": round(result.seconds, 3),
            # add_prompt: whether the chat model's details made it into the prompt.
            "prompt_added": used_prompt != job.prompt,
            # The sampler and schedule type that ran (A1111's names): the model's own
            # when the job named none.
            "sampler_name": result.sampler, "scheduler": result.schedule,
        }


def enriched_prompt(ctx: ImageTaskContext) -> str:
    """The prompt add_prompt decided on: asked once, stored in the task before generating,
    so a re-run after a crash renders the same images from the same prompt.  When the chat
    model suggests nothing, the original prompt (and nothing added is recorded)."""
    decided = ctx.recall(ENRICHED)
    if isinstance(decided, str):
        return decided  # decided by an earlier attempt
    ctx.progress(0.0, {"stage": "rewriting prompt"}, force=True)
    if ctx.enrich is None:
        raise NotReady("add_prompt: no chat engine is running on this worker")
    used = ctx.enrich(ImageJob.from_params(ctx.params).prompt)
    ctx.remember(ENRICHED, used)
    return used


def mask_inputs(ctx: ImageTaskContext, job: ImageJob) -> masking.Prepared | None:
    """With a mask: the init image and mask the model paints (blurred, cropped, filled as
    the job says; ``engines.diffusion.masking``)."""
    if job.mask is None or job.init_file_id is None:
        return None
    user_id = ctx.task.user_id
    init = open_image(ctx.files, job.init_file_id, user_id, "init_img")
    # Not made RGB: a mask with transparency is read by its alpha.
    mask = open_image(ctx.files, job.mask.file_id, user_id, "mask_img", keep_mode=True)
    m = job.mask
    options = masking.MaskOptions(m.blur, m.invert, m.only_masked, m.padding, m.fill)
    return masking.prepare(init, mask, (job.width, job.height), options)


def build_request(ctx: ImageTaskContext, job: ImageJob, model: str, prompt: str,
                  prepared: masking.Prepared | None = None) -> GenerationRequest:
    user_id = ctx.task.user_id
    init = (open_image(ctx.files, job.init_file_id, user_id, "init_img")
            if job.init_file_id and prepared is None else None)
    mask = None
    if prepared is not None:
        init, mask = prepared.init, prepared.mask
    if job.outpaint is not None:
        # outpaint_config: the upload on the larger canvas; the mask marks the new area.
        source = open_image(ctx.files, job.outpaint.file_id, user_id,
                            "outpaint_config.src_img")
        init, mask, _ = outpaint.extend(source, (job.width, job.height),
                                        job.outpaint.align_position)
    controls = [
        ControlUnit(c.cn, open_image(ctx.files, c.file_id, user_id, "control image"),
                    c.weight, c.start, c.end, c.processor, c.low, c.high, c.rate,
                    c.annotators)
        for c in job.controls
    ]
    return GenerationRequest(
        prompt=prompt, negative_prompt=job.neg_prompt,
        seeds=[job.seed + i for i in range(job.n_images)], width=job.width,
        height=job.height, steps=job.steps, guidance=job.scale, init_image=init,
        strength=job.strength, controls=controls, model=model, mask_image=mask,
        loras=lora_sources(ctx.files, ctx.loras, job.loras),
        preview_seconds=ctx.preview_seconds,
        hires=upscaling.hires_fix(ctx, job, model),
        sampler=job.sampler_name, schedule=job.scheduler,
        inpainting_fill=job.mask.fill if job.mask is not None else masking.ORIGINAL,
    )


def generate(ctx: ImageTaskContext, request: GenerationRequest) -> GenerationResult:
    preview = PreviewSaver(ctx.files, ctx.task) if ctx.preview_seconds > 0 else None

    def on_step(done: int, total: int) -> None:
        fraction = PREPARE_SHARE + (1 - 2 * PREPARE_SHARE) * done / max(total, 1)
        ctx.progress(fraction, {"stage": "denoising", "step": done, "steps": total,
                                **(preview.detail if preview else {})})

    started = time.perf_counter()
    try:
        result = ctx.engine.generate(request, on_step, on_preview=preview)
    finally:
        if preview is not None:  # the images are the result now; stale previews go
            preview.finish()
    if ctx.metrics is not None:
        ctx.metrics.seconds.labels(request.model).observe(time.perf_counter() - started)
    return result


def model_hash(entry: ModelEntry) -> str | None:
    """A1111's "Model hash" of a single-file checkpoint (a folder has none A1111 knows)."""
    if not entry.single_file:
        return None
    try:
        return short_hash(entry.path)
    except OSError:
        return None


# LoRA weights key -> lora_hash; a key's file never changes (a new version is a new key).
_LORA_HASHES: dict[str, str] = {}
MAX_LORA_HASHES = 256


def _remember_hash(key: str, data: bytes) -> str:
    if len(_LORA_HASHES) >= MAX_LORA_HASHES:
        _LORA_HASHES.clear()
    _LORA_HASHES[key] = lora_hash(data)
    return _LORA_HASHES[key]


def lora_hashes(files: FileService, loras: LoraCatalog,
                wanted: tuple[Lora, ...]) -> dict[str, str]:
    """A1111's "Lora hashes" of the job's LoRAs, by name.  Loading a LoRA's weights
    (``lora_sources``) remembers its hash, so a file is read here only when this process
    has not loaded it (one missing since leaves its hash out)."""
    out: dict[str, str] = {}
    for item in wanted:
        try:
            key = lora_key(loras.get(int(item.id)))
            out[item.name] = (_LORA_HASHES.get(key)
                              or _remember_hash(key, files.storage.get(key)))
        except (NotFound, FileNotFoundError):
            continue
    return out


def mask_meta(mask: Mask | None) -> dict[str, Any]:
    if mask is None:
        return {}
    return {"mask_blur": mask.blur, "inpainting_mask_invert": mask.invert,
            "inpaint_full_res": mask.only_masked,
            "inpaint_full_res_padding": mask.padding, "inpainting_fill": mask.fill}


def save_images(ctx: ImageTaskContext, job: ImageJob, result: GenerationResult,
                request: GenerationRequest, used_prompt: str,
                hash_: str | None = None,
                loras: dict[str, str] | None = None) -> list[dict[str, Any]]:
    task = ctx.task
    meta_base = {
        "prompt": used_prompt, "negative_prompt": job.neg_prompt, "steps": job.steps,
        "scale": job.scale, "width": job.width, "height": job.height,
        "model": request.model, "task_type": job.task_type, "task_id": task.id,
        "strength": job.strength if request.init_image is not None else None,
        "loras": [{"name": x.name, "weight": x.weight, "hash": (loras or {}).get(x.name)}
                  for x in job.loras],
        "controlnets": [{"cn": c.cn, "weight": c.weight, "start": c.start, "end": c.end,
                         "processor": c.processor, "low": c.low, "high": c.high,
                         "rate": c.rate} for c in job.controls],
        "render_size": _size(result) if result.resized else None,
        **mask_meta(job.mask),
        **upscaling.hires_meta(job.hires),
        # A1111's "Sampler" and "Schedule type" (what ran; the model's own when unnamed).
        "sampler_name": result.sampler or None, "scheduler": result.schedule or None,
    }
    if hash_:
        meta_base["model_hash"] = hash_
    if used_prompt != job.prompt:
        meta_base["original_prompt"] = job.prompt
    images = []
    for index, (image, seed) in enumerate(zip(result.images, request.seeds, strict=True)):
        meta = {**meta_base, "seed": seed, "save_index": index}
        entry_out: dict[str, Any] = {"save_index": index, "seed": seed}
        content_type = FORMATS[job.output_format][1]
        for variant, (data, width, height) in encode_variants(
                image, meta, job.output_format).items():
            info = ctx.files.save(task.user_id, data, content_type, job.task_type,
                                  width, height,
                                  file_id=output_file_id(task.id, index, variant))
            entry_out[variant] = info.id
        entry_out.update(width=image.width, height=image.height)
        images.append(entry_out)
    return images


def _size(result: GenerationResult) -> str:
    return f"{result.render_size[0]}x{result.render_size[1]}"


def open_image(files: FileService, file_id: str, user_id: int, what: str,
               keep_mode: bool = False) -> Image.Image:
    try:
        info = files.get(file_id, user_id)
        data = files.read(info)
    except (NotFound, FileNotFoundError):
        raise BadRequest(f"{what}: the uploaded image is gone") from None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image if keep_mode else image.convert("RGB")


def lora_key(info: LoraInfo) -> str:
    return f"{info.weights_key.rstrip('/')}/{LORA_WEIGHTS_FILE}"


def lora_sources(files: FileService, loras: LoraCatalog,
                 wanted: tuple[Lora, ...]) -> list[LoraSource]:
    sources = []
    for item in wanted:
        try:
            info = loras.get(int(item.id))
        except NotFound:
            raise BadRequest(f"LoRA {item.name!r} no longer exists") from None
        key = lora_key(info)

        def load(key: str = key, name: str = info.name) -> Any:
            try:
                data = files.storage.get(key)
            except FileNotFoundError:
                raise BadRequest(f"LoRA {name!r}: its weights are missing ({key})") from None
            _remember_hash(key, data)  # for the parameters text (lora_hashes)
            return load_safetensors(data)

        sources.append(LoraSource(f"{info.id}_{info.weights_key}", info.name,
                                  float(item.weight), load))
    return sources


@contextmanager
def counted(metrics: ImageMetrics | None, model: str) -> Iterator[None]:
    """Counts how the task ended in the metrics."""
    outcome = "failed"
    try:
        yield
        outcome = "done"
    except Cancelled:
        outcome = "cancelled"
        raise
    except Shutdown:
        outcome = "released"
        raise
    finally:
        if metrics is not None:
            metrics.finished.labels(model, outcome).inc()
