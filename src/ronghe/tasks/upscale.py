"""The upscale task (``POST /api/v1b/upscale``), and what the image task needs for the hires
fix: an ``UpscaleJob`` in, one stored image (three sizes, like an image task's) out.

Like captions, it runs in the image worker on the short image queues under the CPU budget
(a torch lease), and counts against the user's task limits.  The upscaler model runs in
tiles (``engines.diffusion.upscale``), so a large picture needs memory for its pixels and
one tile's work, not for the whole picture's activations; a cancel is seen between tiles.
Its output file ids derive from the task id, so a re-run replaces a partial output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ronghe.engines.diffusion import upscalers
from ronghe.engines.diffusion.output import encode_variants
from ronghe.engines.diffusion.upscale import BUILT_IN, HiresFix, built_in, upscale
from ronghe.errors import BadRequest
from ronghe.images.job import Hires, ImageJob, UpscaleJob
from ronghe.tasks.context import ImageTaskContext, UpscaleTaskContext

# Shares of the progress bar: before the first tile (reading, loading) and after the last.
START, END = 0.05, 0.95


def model_file(folder: Path | None, name: str, field: str) -> Path | None:
    """The upscaler model's file by name (None for a built-in upscaler); a model removed
    since the submit fails the task naming the field."""
    if built_in(name) is not None:
        return None
    found = upscalers.find(folder, name, BUILT_IN) if folder is not None else None
    if found is None:
        raise BadRequest(f"{field}: upscaler {name!r} is no longer in the upscalers folder",
                         field=field)
    if found.problem is not None:
        raise BadRequest(f"{field}: upscaler {name!r} cannot be used: {found.problem}",
                         field=field)
    return found.path


def hires_fix(ctx: ImageTaskContext, job: ImageJob, model: str) -> HiresFix | None:
    """The job's hires fix as the engine takes it (the upscaler model's file found here)."""
    hires = job.hires
    if hires is None:
        return None
    step = ctx.engine.registry.get(model).size_step
    return HiresFix(hires.scale, hires.upscaler, hires.steps, hires.denoise,
                    model_file(ctx.upscalers, hires.upscaler, "hr_upscaler"), step)


def hires_meta(hires: Hires | None) -> dict[str, Any]:
    """The image metadata's hires fields, in task_submit's (and A1111's API) names."""
    if hires is None:
        return {}
    return {"enable_hr": True, "hr_scale": hires.scale, "hr_upscaler": hires.upscaler,
            "hr_second_pass_steps": hires.steps, "hr_denoising_strength": hires.denoise}


def run(ctx: UpscaleTaskContext) -> dict[str, Any]:
    import torch

    from ronghe.engines.cpu import budget

    # The image task imports this module for the hires fix: its helpers are read at run time.
    from ronghe.tasks.images import open_image, output_file_id

    job = UpscaleJob.from_params(ctx.params)
    task = ctx.task
    # 1. The source image and the upscaler (the model's file, when it is one).
    ctx.progress(0.01, {"stage": "loading"})
    source = open_image(ctx.files, job.file_id, task.user_id, "init_img")
    path = model_file(ctx.upscalers, job.upscaler, "upscaler")

    # 2. Upscale, a tile at a time (a cancel stops at the next tile).
    def on_tile(done: int, total: int) -> None:
        ctx.progress(START + (END - START) * done / max(total, 1),
                     {"stage": "upscaling", "tile": done, "tiles": total})

    started = time.perf_counter()
    with budget.lease("torch") as threads:
        torch.set_num_threads(threads)
        image = upscale(source, (job.width, job.height), job.upscaler, path, ctx.device,
                        on_tile=on_tile)
    seconds = time.perf_counter() - started
    ctx.check()  # a cancel during the last tile must not be overwritten by a result
    # 3. Store it in three sizes, as image tasks store theirs.
    ctx.progress(END, {"stage": "saving"})
    meta = {"task_type": job.task_type, "task_id": task.id, "upscaler": job.upscaler,
            "upscale_by": job.scale, "source_size": "{}x{}".format(*job.source_size),
            "width": image.width, "height": image.height}
    entry: dict[str, Any] = {"save_index": 0, "seed": None}
    for variant, (data, width, height) in encode_variants(image, meta).items():
        info = ctx.files.save(task.user_id, data, "image/jpeg", job.task_type, width, height,
                              file_id=output_file_id(task.id, 0, variant))
        entry[variant] = info.id
    entry.update(width=image.width, height=image.height)
    return {"images": [entry], "upscaler": job.upscaler, "scale": job.scale,
            "source_size": meta["source_size"], "seconds": round(seconds, 3)}
