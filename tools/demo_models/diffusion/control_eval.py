"""Held-out evaluation of the demo model's brightness and tile ControlNets.

For every held-out combination and seed a fresh reference image is drawn (as the canny eval
does); its control map is made by the serving code's processor, and the output is scored
against the reference.  Each score is also taken for the base model *without* the
ControlNet on the same prompts and seeds: the difference is what the ControlNet adds.  Both
with the caption as prompt and with an empty prompt (then only the control says what to
draw).

- brightness: Pearson correlation of the output's luma with the control map, per image.
- tile (down_sample_rate 4 and 8, i.e. 8x8 and 4x4 inputs): the mean absolute RGB error
  (0-255) between the output shrunk to the low-res input's size and that input (does it
  keep the layout and colours), and the IoU of the output's shape with the reference's.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from ronghe.engines.diffusion import control
from ronghe.engines.diffusion.guidance import pipeline_arguments
from tools.demo_models.diffusion import scoring, shapes
from tools.demo_models.diffusion.evaluate import DEFAULT_SEEDS, load_pipeline, schedule_of

TILE_RATES = (4, 8)


def reference(combo: shapes.Combo, seed: int) -> tuple[Image.Image, np.ndarray]:
    rng = np.random.default_rng([seed, *map(ord, combo.caption)])
    return shapes.draw(combo.colour, combo.shape, combo.background, rng)


def luma_correlation(image: Image.Image, control_map: Image.Image) -> float:
    """Pearson correlation of the two images' luma; 0 when either is flat."""
    a = np.asarray(image.convert("L"), dtype=np.float64).ravel()
    b = np.asarray(control_map.convert("L").resize(image.size), dtype=np.float64).ravel()
    if a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def lowres_error(image: Image.Image, source: Image.Image, rate: int) -> float:
    """Mean absolute RGB difference (0-255) at the low-res input's size."""
    w, h = max(1, source.width // rate), max(1, source.height // rate)

    def small(im: Image.Image) -> np.ndarray:
        pixels = np.asarray(im.convert("RGB").resize(source.size), dtype=np.float32)
        return cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)

    return float(np.abs(small(image) - small(source)).mean())


def _render(pipe: Any, prompts: list[str], seeds: list[int], maps: list[Image.Image] | None,
            call: dict[str, Any]) -> list[Image.Image]:
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    args: dict[str, Any] = dict(call)
    if maps is not None:
        args["image"] = maps
    with torch.inference_mode():
        return pipe(prompts, generator=generators, **args).images


def evaluate_control(model: Path, controlnet: Path, kind: str,
                     seeds: tuple[int, ...] = DEFAULT_SEEDS, steps: int = 20,
                     guidance: float = 5.0) -> dict[str, Any]:
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    base = load_pipeline(model)
    net = ControlNetModel.from_pretrained(controlnet)
    cn_pipe = StableDiffusionControlNetPipeline(**base.components, controlnet=net)
    cn_pipe.set_progress_bar_config(disable=True)
    jobs = [(combo, seed) for combo in shapes.held_out_combos() for seed in seeds]
    refs = [reference(combo, seed) for combo, seed in jobs]
    seed_list = [seed for _, seed in jobs]
    # Guided as the API guides this model (evaluate.evaluate does the same).
    schedule = schedule_of(model)
    figures: dict[str, Any] = {"kind": kind, "images_per_figure": len(jobs),
                               "num_inference_steps": steps, "guidance_scale": guidance,
                               **schedule.recommended()}
    call = pipeline_arguments(schedule, guidance, steps)
    for prompt_kind in ("caption", "empty"):
        prompts = [combo.caption if prompt_kind == "caption" else "" for combo, _ in jobs]
        plain = _render(base, prompts, seed_list, None, call)
        if kind == "brightness":
            maps = [control.control_image(im, im.size, "brightness") for im, _ in refs]
            ours = _render(cn_pipe, prompts, seed_list, maps, call)
            figures[f"luma_correlation_{prompt_kind}"] = _mean(
                luma_correlation(o, m) for o, m in zip(ours, maps, strict=True))
            figures[f"luma_correlation_{prompt_kind}_base"] = _mean(
                luma_correlation(o, m) for o, m in zip(plain, maps, strict=True))
            continue
        for rate in TILE_RATES:
            maps = [control.control_image(im, im.size, "tile_resample", rate=rate)
                    for im, _ in refs]
            ours = _render(cn_pipe, prompts, seed_list, maps, call)
            for name, images in (("", ours), ("_base", plain)):
                key = f"rate{rate}_{prompt_kind}{name}"
                figures[f"lowres_mae_{key}"] = _mean(
                    lowres_error(o, ref, rate) for o, (ref, _) in zip(images, refs, strict=True))
                figures[f"shape_iou_{key}"] = _mean(
                    scoring.iou(scoring.read_image(o).mask, mask)
                    for o, (_, mask) in zip(images, refs, strict=True))
    return figures


def _mean(values: Any) -> float:
    return round(statistics.fmean(values), 3)


def record(controlnet: Path, figures: dict[str, Any]) -> None:
    meta_path = controlnet / "ronghe.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta["eval"] = figures
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
