"""The shipped demo weights: plain-diffusers loading, a reduced eval, img2img."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from ronghe.engines.shipped import default_controlnet_path, default_model_path
from tools.demo_models.diffusion import scoring, shapes

MODEL = default_model_path()
CONTROLNET = default_controlnet_path()
PROMPT = "a red circle on a blue background"


def test_shipped_folders_are_plain_diffusers_with_safetensors_only() -> None:
    for folder in (MODEL, CONTROLNET):
        assert folder.is_dir(), folder
        assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert size < 16 * 2**20
    index = json.loads((MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    meta = json.loads((MODEL / "ronghe.json").read_text())
    assert meta["family"] == "demo" and meta["native_resolution"] == 32


def test_loads_with_plain_diffusers_classes() -> None:
    # Deliberately no Ronghe code between the folders and diffusers.
    from diffusers import (
        ControlNetModel,
        StableDiffusionControlNetPipeline,
        StableDiffusionPipeline,
    )

    pipe = StableDiffusionPipeline.from_pretrained(str(MODEL))
    pipe.set_progress_bar_config(disable=True)
    image = pipe(PROMPT, num_inference_steps=20, generator=torch.manual_seed(0)).images[0]
    assert image.size == (32, 32)
    assert np.asarray(image).std() > 10  # not a blank or constant image

    controlnet = ControlNetModel.from_pretrained(str(CONTROLNET))
    cn_pipe = StableDiffusionControlNetPipeline(**pipe.components, controlnet=controlnet)
    cn_pipe.set_progress_bar_config(disable=True)
    reference, _ = shapes.draw("red", "square", "blue", np.random.default_rng(0))
    image = cn_pipe(
        PROMPT, image=shapes.canny(reference), num_inference_steps=20,
        generator=torch.manual_seed(0),
    ).images[0]
    assert image.size == (32, 32)


@pytest.fixture
def one_thread() -> Iterator[None]:
    # torch's OpenMP threads spin-wait; on a shared, busy CPU two of them slowed this
    # eval ~10x. One thread degrades gracefully.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_reduced_eval_stays_above_floors(one_thread: None) -> None:
    from tools.demo_models.diffusion.evaluate import evaluate

    meta = json.loads((MODEL / "ronghe.json").read_text())
    report = evaluate(
        MODEL, CONTROLNET, seeds=(0, 1), timing_runs=1,
        guidance_scale=meta["recommended"]["guidance_scale"],
    )
    # Guided as the API guides it: the schedule in ronghe.json (guidance.py).
    assert report.settings["guidance_end"] == 0.3
    # Floors a little under what the shipped weights score on this reduced set (colour 1.0,
    # background 1.0, shape 0.96 (24 images), ControlNet IoU 0.89; docs/demo-model.md has
    # the full eval). A broken scheduler, VAE or tokenizer drops them towards chance (~0.17 /
    # 0.17 / 0.33). The time limit is loose (measured: 0.37 s with one thread) because CI
    # machines are shared; it still catches a pipeline that renders at the wrong size or
    # with far too many steps.
    assert report.colour >= 0.9
    assert report.background >= 0.9
    assert report.shape >= 0.83
    # The second shape reading (fill ratio): 0.83 here (0.81 on the full eval). Guided at
    # full scale every step the squares come out pinched: 0.79 here, squares' median fill
    # 0.858 against 0.89 with the schedule, which the last floor tells apart.
    assert report.shape_by_fill >= 0.75
    assert 0.4 < report.median_fill["triangle"] < 0.6 < report.median_fill["circle"]
    assert report.median_fill["square"] > 0.87
    assert report.controlnet_iou is not None and report.controlnet_iou >= 0.75
    assert report.seconds_per_image < 2.0


def test_img2img_at_low_strength_keeps_the_layout() -> None:
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(str(MODEL))
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(11)
    for combo in shapes.held_out_combos()[:6]:
        init, mask = shapes.draw(combo.colour, combo.shape, combo.background, rng)
        out = pipe(
            combo.caption, image=init, strength=0.4, num_inference_steps=20,
            generator=torch.manual_seed(0),
        ).images[0]
        reading = scoring.read_image(out)
        assert reading.background == combo.background, combo
        assert reading.colour == combo.colour, combo
        # Same place and extent; the outline may drift towards the model's own drawing
        # of the shape (its triangles are a little concave), so IoU is not held high.
        assert _centroid_shift(reading.mask, mask) < 2.0, combo
        assert scoring.iou(reading.mask, mask) > 0.5, combo


def _centroid_shift(a: np.ndarray, b: np.ndarray) -> float:
    ya, xa = np.nonzero(a)
    yb, xb = np.nonzero(b)
    return float(np.hypot(xa.mean() - xb.mean(), ya.mean() - yb.mean()))


@pytest.mark.slow
def test_full_eval_meets_the_targets() -> None:
    from tools.demo_models.diffusion.evaluate import evaluate

    meta = json.loads((MODEL / "ronghe.json").read_text())
    report = evaluate(MODEL, CONTROLNET, guidance_scale=meta["recommended"]["guidance_scale"])
    assert report.colour >= 0.90
    assert report.background >= 0.85
    assert report.shape >= 0.80
    assert report.controlnet_iou is not None and report.controlnet_iou >= 0.6
