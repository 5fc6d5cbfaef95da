"""Running one image request on a cached pipeline: seeds, progress, native-size rendering.

A request with ``n`` images and seed ``s`` renders image ``i`` from its own generator seeded
``s + i``, so an image depends only on its own seed and parameters: the same seed and
parameters give the same images, however the batch is split.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ronghe.engines.cpu import budget
from ronghe.engines.diffusion import control, masking, outpaint, prompts, samplers, upscale
from ronghe.engines.diffusion import device as placement
from ronghe.engines.diffusion.families import Family
from ronghe.engines.diffusion.guidance import GuidanceSchedule
from ronghe.engines.diffusion.inpaint import LatentBlend, blends, pipeline_handles
from ronghe.engines.diffusion.pipelines import (
    CONTROLNET,
    CONTROLNET_IMG2IMG,
    IMG2IMG,
    INPAINT,
    TXT2IMG,
    LoraSource,
    PipelineCache,
)
from ronghe.engines.diffusion.preview import CleanSampleTap, PreviewCallback, Previewer
from ronghe.engines.diffusion.registry import ModelEntry, ModelRegistry

# Images denoised together on a GPU (on a CPU: the family's ``cpu_batch``).
GPU_BATCH = 4
# Step callback: (steps done, steps in total); raises to stop the generation.
StepCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ControlUnit:
    name: str
    source: Image.Image
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    processor: str = "canny"
    low: int = control.CANNY_LOW
    high: int = control.CANNY_HIGH
    # tile processors: the down_sample_rate; weight-needing processors: their folder.
    rate: int = 1
    annotators: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    seeds: list[int]
    width: int
    height: int
    steps: int
    guidance: float
    negative_prompt: str = ""
    # A registry name or alias; empty means the registry's default model.
    model: str = ""
    init_image: Image.Image | None = None
    strength: float = 0.6
    # Inpainting (outpaint_config): white where to paint, the size of init_image; the
    # black area keeps init_image's pixels exactly.
    mask_image: Image.Image | None = None
    # A1111's inpainting_fill (masking.py); 2 and 3 act on the latents, here.
    inpainting_fill: int = masking.ORIGINAL
    controls: list[ControlUnit] = field(default_factory=list)
    loras: list[LoraSource] = field(default_factory=list)
    # Seconds between live previews (0: none); see engines/diffusion/preview.py.
    preview_seconds: float = 0.0
    # Hires fix (upscale.py): the first pass upscaled, then a second img2img pass.
    hires: upscale.HiresFix | None = None
    # A1111's sampler and schedule type (samplers.py); "" = the model's own scheduler.
    sampler: str = ""
    schedule: str = ""

    @property
    def output_size(self) -> tuple[int, int]:
        """The delivered size: width x height, times hr_scale with the hires fix."""
        return (self.hires.size(self.width, self.height) if self.hires is not None
                else (self.width, self.height))

    @property
    def mode(self) -> str:
        if self.mask_image is not None:
            if self.init_image is None or self.controls:
                raise ValueError("inpainting takes an init image and no ControlNet units")
            return INPAINT
        if self.controls:
            return CONTROLNET_IMG2IMG if self.init_image is not None else CONTROLNET
        return IMG2IMG if self.init_image is not None else TXT2IMG


@dataclass
class GenerationResult:
    images: list[Image.Image]
    render_size: tuple[int, int]
    resized: bool
    steps_run: int
    seconds: float
    control_maps: list[Image.Image] = field(default_factory=list)
    # The sampler and schedule type that ran, by A1111's names (samplers.py).
    sampler: str = ""
    schedule: str = ""


def size_multiple(pipe: Any, entry: ModelEntry) -> int:
    """Smallest pixel step the model's latents allow (VAE factor x UNet downsamplings; the
    transformer families' VAE factor x their 2x2 patches)."""
    if not hasattr(pipe, "unet"):
        return entry.size_step
    blocks = len(getattr(pipe.unet.config, "block_out_channels", (0,)))
    latent_step = int(getattr(pipe, "vae_scale_factor", 8)) * 2 ** max(0, blocks - 1)
    # diffusers' SD pipelines also refuse sides that are not multiples of 8.
    return math.lcm(latent_step, 8)


def render_size(entry: ModelEntry, width: int, height: int, multiple: int) -> tuple[int, int]:
    """A model trained at a small fixed size renders with its shorter side at that size and
    the requested aspect ratio; others render at the requested size."""
    native = entry.native_resolution
    if native is None or min(width, height) <= native:
        return width, height
    scale = native / min(width, height)

    def snap(side: int) -> int:
        return max(multiple, round(side * scale / multiple) * multiple)

    return snap(width), snap(height)


class ImageEngine:
    """In-process generation: the model registry plus the pipeline cache.

    Implements ``engine.ImageEngineProtocol``, as the child-process ``IsolatedEngine`` does.
    """

    def __init__(self, registry: ModelRegistry, cache: PipelineCache) -> None:
        self.registry = registry
        self.cache = cache

    def describe(self) -> dict[str, Any]:
        return {"engine": "in-process", "device": self.cache.device,
                "loaded": self.cache.loaded()}

    def close(self) -> None:
        self.cache.clear()

    def generate(self, req: GenerationRequest, on_step: StepCallback | None = None,
                 threads: int | None = None,
                 on_preview: PreviewCallback | None = None) -> GenerationResult:
        """``threads``: torch threads to use, when the caller holds the CPU budget's lease
        (the engine's own process does); else the engine takes a lease itself."""
        entry = self.registry.get(req.model)
        started = time.perf_counter()
        with self.cache.lock, budget.lease("torch") as share:
            torch.set_num_threads(threads or share)
            loaded = self.cache.model(entry)
            self.cache.apply_loras(loaded, req.loras)
            size = render_size(entry, req.width, req.height,
                               size_multiple(loaded.base, entry))
            maps = [control.control_image(u.source, size, u.processor, u.low, u.high,
                                          u.rate, u.annotators) for u in req.controls]
            mode = req.mode
            # A UNet the inpainting pipeline refuses (or a latent fill, which it lacks)
            # inpaints by LatentBlend: on img2img, or on txt2img from pure noise at
            # strength 1 (inpaint.py).
            blended = (mode == INPAINT and entry.family_info.is_sd
                       and not pipeline_handles(loaded.base.unet, req.inpainting_fill))
            if blended and not blends(loaded.base.unet):
                raise ValueError(f"inpainting_fill: {req.inpainting_fill} (a latent fill) "
                                 "applies to UNets that denoise latents alone; this model's "
                                 "takes the mask as input (an inpainting checkpoint)")
            run_mode = ((TXT2IMG if req.strength >= 1 else IMG2IMG) if blended else mode)
            pipe = self.cache.pipeline_for_run(loaded, run_mode,
                                               tuple(u.name for u in req.controls))
            init = (req.init_image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
                    if req.init_image is not None else None)
            mask = (req.mask_image.convert("L").resize(size, Image.Resampling.NEAREST)
                    if req.mask_image is not None else None)
            used = samplers.used(pipe.scheduler, entry.family, req.sampler, req.schedule)
            previewer = (Previewer(pipe, entry.family_info, size, req.preview_seconds,
                                   on_preview)
                         if on_preview is not None and req.preview_seconds > 0 else None)
            images, steps_run = self._run(entry, pipe, req, size, init, maps,
                                          upscale.first_pass_progress(req, on_step),
                                          previewer, mask, blended)
            if req.hires is not None:  # upscale, then a second img2img pass (upscale.py)
                second = self.cache.pipeline_for_run(loaded, IMG2IMG)

                def render(again: GenerationRequest, start: Image.Image, at: tuple[int, int],
                           step: StepCallback | None) -> tuple[list[Image.Image], int]:
                    previews = (Previewer(second, entry.family_info, at, req.preview_seconds,
                                          on_preview)
                                if previewer is not None and on_preview is not None else None)
                    return self._run(entry, second, again, at, start, [], step, previews)

                images, size, more = upscale.hires_fix(
                    req, second, images, size, size_multiple(loaded.base, entry), steps_run,
                    render, on_step, self.cache.device)
                steps_run += more
        for unit, control_map in zip(req.controls, maps, strict=True):
            images = [control.finish(im, unit.processor, control_map) for im in images]
        resized = size != req.output_size
        if resized:
            images = [im.resize(req.output_size, Image.Resampling.BICUBIC) for im in images]
        if req.mask_image is not None and req.init_image is not None:
            # At full size, so a model rendering smaller still keeps the source's pixels.
            images = [outpaint.composite(im, req.init_image, req.mask_image) for im in images]
        return GenerationResult(images, size, resized, steps_run,
                                time.perf_counter() - started, maps, *used)

    def _run(self, entry: ModelEntry, pipe: Any, req: GenerationRequest,
             size: tuple[int, int], init: Image.Image | None, maps: list[Image.Image],
             on_step: StepCallback | None, previewer: Previewer | None = None,
             mask: Image.Image | None = None,
             blended: bool = False) -> tuple[list[Image.Image], int]:
        # The request's sampler on this (cached, shared) pipeline for this pass only.
        with samplers.applied(pipe, entry.family, req.sampler, req.schedule):
            return self._denoise(entry, pipe, req, size, init, maps, on_step, previewer,
                                 mask, blended)

    def _denoise(self, entry: ModelEntry, pipe: Any, req: GenerationRequest,
                 size: tuple[int, int], init: Image.Image | None, maps: list[Image.Image],
                 on_step: StepCallback | None, previewer: Previewer | None = None,
                 mask: Image.Image | None = None,
                 blended: bool = False) -> tuple[list[Image.Image], int]:
        per_image = req.steps
        from_noise = blended and req.strength >= 1  # every step, as the pipeline does
        if init is not None and not from_noise:
            # img2img runs only the last ``strength`` share of the schedule.
            per_image = int(req.steps * req.strength)
            if per_image < 1:
                # Nothing to denoise: strength ~0 means "keep the image".
                return [init.copy() for _ in req.seeds], 0
        total = per_image * len(req.seeds)
        family = entry.family_info
        batch = family.cpu_batch if self.cache.device == "cpu" else GPU_BATCH
        tiling, slicing = placement.vae_tiling(size[0], size[1], min(batch, len(req.seeds)))
        vae = pipe.vae
        # The VAE is shared by the model's pipelines: set both ways on every run.
        for on, enable, disable in ((tiling, "enable_tiling", "disable_tiling"),
                                    (slicing, "enable_slicing", "disable_slicing")):
            method = getattr(vae, enable if on else disable, None)
            if method is not None:
                method()
        # A LoRA's concept is a weaker signal than the words the base model knows, and
        # guidance in the late steps is what carries it (a trained colour: 16/16 guided every
        # step, 11/16 with the demo's schedule; docs/demo-model.md), so a request that applies
        # LoRAs is guided every step (at weight 0 one changes nothing, so it does not count).
        # img2img (not LatentBlend) runs the last per_image steps only.
        applies_loras = any(lora.weight != 0 for lora in req.loras)
        schedule = GuidanceSchedule() if applies_loras else entry.guidance_schedule
        requested = req.guidance
        if entry.guidance_kind == "none":
            # A few-step distilled model: the request's scale would only slow it down (and
            # spoil it); it renders at its own (usually no guidance).
            requested = entry.recommended_guidance or 0.0
        guidance, guidance_hook = schedule.start(
            requested, req.steps, skipped=req.steps - per_image)
        negative = (req.negative_prompt or None) if family.negative_prompt else None
        # Weighted or long prompts as compel's embeddings (prompts.py), plain ones as text.
        call = prompts.pipeline_arguments(pipe, entry.family, req.prompt, negative or "")
        images: list[Image.Image] = []
        tap = CleanSampleTap(pipe.scheduler)
        for first in range(0, len(req.seeds), batch):
            seeds = req.seeds[first:first + batch]
            done_before = first * per_image
            blend = (LatentBlend(pipe, init, mask, seeds, req.inpainting_fill)
                     if blended and init is not None and mask is not None else None)

            def callback(_pipe: Any, step: int, _t: Any, kwargs: dict[str, Any],
                         done_before: int = done_before, n: int = len(seeds),
                         blend: LatentBlend | None = blend) -> dict[str, Any]:
                done = samplers.schedule_step(_pipe, step, per_image)  # 2nd-order: 2 calls
                guidance_hook(pipe, done)
                if blend is not None:
                    kwargs["latents"] = blend(_pipe, kwargs["latents"], step)
                if previewer is not None:
                    previewer(tap, kwargs["latents"])
                if on_step is not None:
                    on_step(done_before + (done + 1) * n, total)
                return kwargs

            starting: Any = contextlib.nullcontext()
            if blend is None:
                args = self._arguments(req, size, init, maps, mask, family)
            elif from_noise:
                args = {"width": size[0], "height": size[1]}
            else:  # img2img from the blend's own start
                args, starting = {"image": init, "strength": req.strength}, blend.starting(pipe)
            with torch.inference_mode(), tap, starting:
                out = pipe(**call, num_images_per_prompt=len(seeds),
                           generator=[torch.Generator().manual_seed(s) for s in seeds],
                           num_inference_steps=req.steps, guidance_scale=guidance,
                           callback_on_step_end=callback, output_type="pil", **args)
            images.extend(out.images)
        return images, per_image

    @staticmethod
    def _arguments(req: GenerationRequest, size: tuple[int, int], init: Image.Image | None,
                   maps: list[Image.Image], mask: Image.Image | None,
                   family: Family) -> dict[str, Any]:
        width, height = size
        args: dict[str, Any] = {}
        if (mask is None and init is not None
                and family.pipelines.get(IMG2IMG) == family.pipelines.get(INPAINT)):
            # A family whose img2img is its inpainting pipeline (FLUX.2 [klein]): the mask
            # covers everything, so ``strength`` alone decides how much changes.
            mask = Image.new("L", size, 255)
        if mask is not None:
            # The inpainting pipeline's own default size is the UNet's, not the image's.
            return {"image": init, "mask_image": mask, "strength": req.strength,
                    "width": width, "height": height}
        if init is not None:
            args.update(image=init, strength=req.strength)
            if not family.is_sd:
                # Their img2img pipelines default to the model's native size, not the image's.
                args.update(width=width, height=height)
        else:
            args.update(width=width, height=height)
        if maps:
            single = len(maps) == 1
            cn = {"controlnet_conditioning_scale": [u.weight for u in req.controls],
                  "control_guidance_start": [u.start for u in req.controls],
                  "control_guidance_end": [u.end for u in req.controls]}
            if single:
                cn["controlnet_conditioning_scale"] = req.controls[0].weight
            cn_images: Any = maps[0] if single else maps
            if init is not None:
                args.update(control_image=cn_images, **cn)
            else:
                args.update(image=cn_images, **cn)
        return args
