"""The "image" job handler: a validated task's params in, stored JPEGs out.

Everything the handler needs is in the task row (validated and normalised at submit, the
seed already chosen), so a task re-run after a crash produces the same images, and writes
them under the same file ids (derived from the task id), replacing any partial output.
"""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

from PIL import Image
from safetensors.torch import load as load_safetensors

from ronghe.api.images import prompt as add_prompt
from ronghe.api.images.state import image_state
from ronghe.engines.diffusion.generate import ControlUnit, GenerationRequest
from ronghe.engines.diffusion.output import encode_variants
from ronghe.engines.diffusion.pipelines import LoraSource
from ronghe.errors import BadRequest, NotFound
from ronghe.jobs import Cancelled, JobContext, register
from ronghe.jobs.previews import PreviewSaver
from ronghe.jobs.runner import Shutdown

KIND = "image"
LORA_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
# Share of the progress bar spent before denoising starts (prompt rewrite, loading).
PREPARE_SHARE = 0.05


def output_file_id(task_id: str, index: int, variant: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ronghe:image:{task_id}:{index}:{variant}"))


def open_image(services: Any, file_id: str, user_id: int, what: str) -> Image.Image:
    try:
        info = services.files.get(file_id, user_id)
        data = services.files.read(info)
    except (NotFound, FileNotFoundError):
        raise BadRequest(f"{what}: the uploaded image is gone") from None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def lora_sources(services: Any, loras: list[dict[str, Any]]) -> list[LoraSource]:
    sources = []
    for item in loras:
        try:
            info = services.loras.get(int(item["id"]))
        except NotFound:
            raise BadRequest(f"LoRA {item['name']!r} no longer exists") from None
        key = f"{info.weights_key.rstrip('/')}/{LORA_WEIGHTS_FILE}"

        def load(key: str = key, name: str = info.name) -> Any:
            try:
                return load_safetensors(services.files.storage.get(key))
            except FileNotFoundError:
                raise BadRequest(f"LoRA {name!r}: its weights are missing ({key})") from None

        sources.append(LoraSource(f"{info.id}_{info.weights_key}", info.name,
                                  float(item["weight"]), load))
    return sources


def run_image(ctx: JobContext) -> dict[str, Any]:
    services = ctx.services
    state = image_state(services)
    p = ctx.params
    task = ctx.task
    entry = state.registry.get(p["model"])
    state.registry.check(entry)
    used_prompt = p["prompt"]
    if p.get("add_prompt"):
        ctx.progress(0.0, {"stage": "rewriting prompt"}, force=True)
        used_prompt = add_prompt.rewrite(services, p["prompt"], state.loop)
    ctx.progress(0.01, {"stage": "loading"})
    init = (open_image(services, p["init_file_id"], task.user_id, "init_img")
            if p.get("init_file_id") else None)
    controls = [
        ControlUnit(c["cn"], open_image(services, c["file_id"], task.user_id, "control image"),
                    c["weight"], c["start"], c["end"], c["processor"], c["low"], c["high"])
        for c in p.get("controls", [])
    ]
    seeds = [p["seed"] + i for i in range(p["n_images"])]
    request = GenerationRequest(
        prompt=used_prompt, negative_prompt=p["neg_prompt"], seeds=seeds, width=p["width"],
        height=p["height"], steps=p["steps"], guidance=p["scale"], init_image=init,
        strength=p["strength"], controls=controls,
        loras=lora_sources(services, p.get("loras", [])),
        preview_seconds=services.settings.image_preview_seconds,
    )
    preview = PreviewSaver(services, task) if services.settings.image_previews else None

    def on_step(done: int, total: int) -> None:
        fraction = PREPARE_SHARE + (1 - 2 * PREPARE_SHARE) * done / max(total, 1)
        ctx.progress(fraction, {"stage": "denoising", "step": done, "steps": total,
                                **(preview.detail if preview else {})})

    started = time.perf_counter()
    try:
        result = state.engine.generate(entry, request, on_step, on_preview=preview)
    finally:
        if preview is not None:
            preview.discard()
    if state.metrics is not None:
        state.metrics.seconds.labels(entry.name).observe(time.perf_counter() - started)
    ctx.check()  # a cancel during the last step must not be overwritten by a result
    ctx.progress(1 - PREPARE_SHARE, {"stage": "saving"})
    render = f"{result.render_size[0]}x{result.render_size[1]}"
    meta_base = {
        "prompt": used_prompt, "negative_prompt": p["neg_prompt"], "steps": p["steps"],
        "scale": p["scale"], "width": p["width"], "height": p["height"], "model": entry.name,
        "task_type": p["task_type"], "task_id": task.id,
        "strength": p["strength"] if init is not None else None,
        "loras": [{"name": x["name"], "weight": x["weight"]} for x in p.get("loras", [])],
        "controlnets": [{k: c[k] for k in ("cn", "weight", "start", "end", "processor",
                                            "low", "high")} for c in p.get("controls", [])],
        "render_size": render if result.resized else None,
    }
    if used_prompt != p["prompt"]:
        meta_base["original_prompt"] = p["prompt"]
    images = []
    for index, (image, seed) in enumerate(zip(result.images, seeds, strict=True)):
        meta = {**meta_base, "seed": seed, "save_index": index}
        entry_out: dict[str, Any] = {"save_index": index, "seed": seed}
        for variant, (data, width, height) in encode_variants(image, meta).items():
            info = services.files.save(task.user_id, data, "image/jpeg", p["task_type"],
                                       width, height,
                                       file_id=output_file_id(task.id, index, variant))
            entry_out[variant] = info.id
        entry_out.update(width=image.width, height=image.height)
        images.append(entry_out)
    return {
        "images": images, "seed": p["seed"], "seeds": seeds, "prompt": used_prompt,
        "original_prompt": p["prompt"], "model": entry.name, "render_size": render,
        "resized": result.resized, "steps_run": result.steps_run,
        "seconds": round(result.seconds, 3),
    }


def counted(ctx: JobContext) -> dict[str, Any]:
    """run_image, with how it ended counted in the metrics."""
    outcome = "failed"
    try:
        result = run_image(ctx)
        outcome = "done"
        return result
    except Cancelled:
        outcome = "cancelled"
        raise
    except Shutdown:
        outcome = "released"
        raise
    finally:
        metrics = image_state(ctx.services).metrics
        if metrics is not None:
            metrics.finished.labels(ctx.params.get("model", ""), outcome).inc()


def register_handler() -> None:
    register(KIND, counted)
