"""Held-out evaluation of the demo model through the real diffusers pipelines."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ronghe.engines.diffusion.guidance import GuidanceSchedule, pipeline_arguments
from ronghe.engines.diffusion.registry import folder_meta
from tools.demo_models.diffusion import scoring, shapes

DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2, 3)


@dataclass
class Sample:
    combo: shapes.Combo
    seed: int
    image: Image.Image
    reading: scoring.Reading
    control: Image.Image | None = None
    iou: float | None = None


@dataclass
class Report:
    colour: float
    background: float
    shape: float
    controlnet_iou: float | None
    controlnet_colour: float | None
    seconds_per_image: float
    settings: dict
    # The second reading of the shape (fill ratio of its bounding box), and how often the
    # two readings agree with each other.
    shape_by_fill: float = float("nan")
    shape_readings_agree: float = float("nan")
    # Median fill ratio of the generated shapes, per prompted shape (ideal: square 1.0,
    # circle 0.785, triangle 0.5): how far from crisp geometry they are.
    median_fill: dict[str, float] = field(default_factory=dict)
    # The same prompts with other words in them (issue 17): "shifted" puts a made-up word
    # somewhere in the caption; "trigger_form" is a LoRA prompt, ``a <word> <shape> on a
    # <background> background`` (no shape colour). Share of images right per reading.
    shifted: dict[str, float] = field(default_factory=dict)
    trigger_form: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    control_samples: list[Sample] = field(default_factory=list)

    def figures(self) -> dict[str, float | None]:
        return {
            "shape_colour_accuracy": round(self.colour, 3),
            "background_colour_accuracy": round(self.background, 3),
            "shape_accuracy": round(self.shape, 3),
            "shape_accuracy_by_fill": round(self.shape_by_fill, 3),
            "shape_readings_agree": round(self.shape_readings_agree, 3),
            "controlnet_iou": (
                None if self.controlnet_iou is None else round(self.controlnet_iou, 3)
            ),
            "seconds_per_image": round(self.seconds_per_image, 3),
            **{f"shifted_{name}": value for name, value in self.shifted.items()},
            **{f"trigger_form_{name}": value for name, value in self.trigger_form.items()},
        }


def schedule_of(model: Path) -> GuidanceSchedule:
    """The guidance schedule the model's ``ronghe.json`` recommends."""
    return GuidanceSchedule.from_recommended(folder_meta(model).get("recommended") or {})


def load_pipeline(model: Path):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def control_image(combo: shapes.Combo, seed: int) -> Image.Image:
    """A canny map of a freshly drawn reference image for this combo and seed."""
    rng = np.random.default_rng([seed, *map(ord, combo.caption)])
    image, _ = shapes.draw(combo.colour, combo.shape, combo.background, rng)
    return shapes.canny(image)


def shifted_prompts(combo: shapes.Combo, seed: int) -> tuple[str, str]:
    """The held-out caption with a made-up word put in at a seeded place, and the trigger
    form of the prompt (the made-up word in place of the shape colour)."""
    rng = np.random.default_rng([seed, 7, *map(ord, combo.caption)])
    words = combo.caption.split()
    words.insert(int(rng.integers(0, len(words) + 1)), shapes.random_word(rng))
    trigger = f"a {shapes.random_word(rng)} {combo.shape} on a {combo.background} background"
    return " ".join(words), trigger


def evaluate(
    model: Path,
    controlnet: Path | None = None,
    seeds: tuple[int, ...] = DEFAULT_SEEDS,
    combos: list[shapes.Combo] | None = None,
    num_inference_steps: int = 20,
    guidance_scale: float = 5.0,
    timing_runs: int = 3,
    schedule: GuidanceSchedule | None = None,
) -> Report:
    """``schedule``: how guidance falls off over the steps; None: as the model's
    ``ronghe.json`` recommends, which is what the API serves."""
    combos = combos or shapes.held_out_combos()
    pipe = load_pipeline(model)
    schedule = schedule_of(model) if schedule is None else schedule
    settings: dict[str, float] = {"num_inference_steps": num_inference_steps,
                                  "guidance_scale": guidance_scale, **schedule.recommended()}
    call = pipeline_arguments(schedule, guidance_scale, num_inference_steps)
    jobs = [(combo, seed) for combo in combos for seed in seeds]
    with torch.inference_mode():
        images = pipe(
            [combo.caption for combo, _ in jobs],
            generator=_generators([seed for _, seed in jobs]),
            **call,
        ).images
        samples = [
            Sample(combo, seed, image, scoring.read_image(image))
            for (combo, seed), image in zip(jobs, images, strict=True)
        ]
        timings = []
        for run in range(timing_runs + 1):
            started = time.perf_counter()
            pipe(combos[0].caption, generator=_generators([run])[0], **call)
            if run:  # the first call warms up kernels and caches
                timings.append(time.perf_counter() - started)
        control_samples = _controlnet(pipe, controlnet, jobs, call) if controlnet else []
        prompts = [shifted_prompts(combo, seed) for combo, seed in jobs]
        moved = pipe([p for pair in prompts for p in pair],
                     generator=_generators([seed for _, seed in jobs for _ in range(2)]),
                     **call).images
        shifted = [scoring.read_image(image) for image in moved[0::2]]
        trigger = [scoring.read_image(image) for image in moved[1::2]]

    def rate(hits: list[bool]) -> float:
        return sum(hits) / len(hits)

    return Report(
        colour=rate([s.reading.colour == s.combo.colour for s in samples]),
        background=rate([s.reading.background == s.combo.background for s in samples]),
        shape=rate([s.reading.shape == s.combo.shape for s in samples]),
        shape_by_fill=rate([s.reading.shape_by_fill == s.combo.shape for s in samples]),
        shape_readings_agree=rate([s.reading.shape_by_fill == s.reading.shape
                                   for s in samples]),
        median_fill={shape: round(statistics.median(s.reading.fill for s in samples
                                                    if s.combo.shape == shape), 3)
                     for shape in sorted({s.combo.shape for s in samples})},
        controlnet_iou=(
            statistics.fmean(s.iou for s in control_samples if s.iou is not None)
            if control_samples
            else None
        ),
        controlnet_colour=(
            rate([s.reading.colour == s.combo.colour for s in control_samples])
            if control_samples
            else None
        ),
        shifted=_shares(shifted, jobs, ("colour", "shape", "background")),
        trigger_form=_shares(trigger, jobs, ("shape", "background")),
        seconds_per_image=statistics.median(timings) if timings else float("nan"),
        settings=settings,
        samples=samples,
        control_samples=control_samples,
    )


def _shares(readings: list[scoring.Reading], jobs, fields: tuple[str, ...]) -> dict[str, float]:
    """Share of readings whose ``field`` is the combo's (its ``colour``, ``shape``, ...)."""
    return {name: round(sum(getattr(r, name) == getattr(combo, name)
                            for r, (combo, _) in zip(readings, jobs, strict=True))
                        / len(readings), 3) for name in fields}


def _controlnet(pipe, controlnet: Path, jobs, call) -> list[Sample]:
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    net = ControlNetModel.from_pretrained(controlnet)
    cn_pipe = StableDiffusionControlNetPipeline(**pipe.components, controlnet=net)
    cn_pipe.set_progress_bar_config(disable=True)
    controls = [control_image(combo, seed) for combo, seed in jobs]
    images = cn_pipe(
        [combo.caption for combo, _ in jobs],
        image=controls,
        generator=_generators([seed for _, seed in jobs]),
        **call,
    ).images
    out = []
    for (combo, seed), image, control in zip(jobs, images, controls, strict=True):
        reading = scoring.read_image(image)
        target = scoring.enclosed_region(control)
        out.append(Sample(combo, seed, image, reading, control, scoring.iou(reading.mask, target)))
    return out


def contact_sheet(report: Report, scale: int = 3, max_seeds: int = 4) -> Image.Image:
    """One row per held-out combo: txt2img samples, then edge map + ControlNet output."""
    tile = shapes.RESOLUTION * scale
    label_w = 250
    rows: dict[shapes.Combo, list[Sample]] = {}
    for sample in report.samples:
        rows.setdefault(sample.combo, []).append(sample)
    controls: dict[shapes.Combo, list[Sample]] = {}
    for sample in report.control_samples:
        controls.setdefault(sample.combo, []).append(sample)
    n_control = 2 if report.control_samples else 0
    cols = max_seeds + 2 * n_control
    sheet = Image.new("RGB", (label_w + cols * (tile + 4), len(rows) * (tile + 4)), "white")
    pen = ImageDraw.Draw(sheet)
    for r, (combo, samples) in enumerate(rows.items()):
        y = r * (tile + 4)
        pen.text((4, y + tile // 2 - 6), combo.caption, fill="black")
        tiles = [s.image for s in samples[:max_seeds]]
        for s in controls.get(combo, [])[:n_control]:
            tiles += [s.control, s.image]
        for c, image in enumerate(tiles):
            big = image.resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(big, (label_w + c * (tile + 4), y))
    return sheet
