"""Acceptance, through HTTP only: images of a new concept in, a LoRA callable by name out.

The demo model never saw the colour purple (nor stars).  After training on eight purple
stars with the trigger word, ``task_submit`` with ``model_name`` = the trained name must draw
purple shapes, and the same prompt on the base model must not, judged by the demo's colour
scoring (the shape's median colour against the palette), not by eye.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.engines.shipped import default_model_path
from ronghe.engines.training.captions import base_caption
from tests.conftest import Account, DemoModel
from tests.image_support import wait_done
from tests.training_support import (
    TRIGGER,
    concept_images,
    make_dataset,
    submit,
    upload,
    wait_training,
)
from tools.demo_models.diffusion import scoring

# How a LoRA is called: its trigger word with the main_body's class word, as it was trained.
PROMPT = base_caption(TRIGGER, "Style")
SEEDS = (11, 12)
IMAGES_PER_TASK = 4


def _generate(client: TestClient, account: Account, **fields: Any) -> list[Image.Image]:
    images = []
    for seed in SEEDS:
        response = client.post("/api/v1b/task_submit", json={
            "token": account.token, "prompt": PROMPT, "n_images": IMAGES_PER_TASK,
            "select_seed": seed, "output_size": "64x64", "ddim_steps": 20, **fields})
        assert response.status_code == 200, response.text
        result = wait_done(client, account.token, response.json()["task_id"], timeout=300)
        assert result["state"] == "done", result
        for item in result["images"]:
            data = client.get(item["large"].replace("http://testserver", "")).content
            images.append(Image.open(io.BytesIO(data)).convert("RGB"))
    return images


def _purple_share(images: list[Image.Image]) -> float:
    return sum(scoring.read_image(im).colour == "purple" for im in images) / len(images)


def _run(client: TestClient, account: Account, demo_model: DemoModel,
         **train_fields: Any) -> dict[str, float]:
    if demo_model.path != default_model_path():
        pytest.skip("needs the shipped demo weights; the untrained stand-in draws noise")
    urls = upload(client, account.token, concept_images(8, size=64))
    dataset = make_dataset(client, account.token, urls)
    started = time.monotonic()
    task_id = submit(client, account.token, [dataset], name="purple-stars", **train_fields)
    seen: list[dict[str, Any]] = []
    final = wait_training(client, account.token, task_id, timeout=900, seen=seen)
    train_seconds = time.monotonic() - started
    assert final["state"] == "done", final
    fractions = [body["training_progress"] for body in seen]
    assert fractions[0] < 0.5 and fractions[-1] == 1.0 and fractions == sorted(fractions)

    trained = _generate(client, account, model_name="purple-stars")
    base = _generate(client, account, model_name="ronghe-demo")
    figures = {"lora": _purple_share(trained), "base": _purple_share(base),
               "train_steps": final["total_steps"], "train_seconds": round(train_seconds, 1)}
    print(f"\npurple share: {figures}")
    assert figures["lora"] >= 0.75, figures
    assert figures["base"] <= 0.25, figures
    return figures


def test_trained_lora_draws_the_new_concept_and_the_base_model_does_not(
        client: TestClient, account: Account, demo_model: DemoModel) -> None:
    """The Style preset, trained twice its 360 steps (about 170 s on one core).

    The preset's 360 steps carry the concept for prompts that describe the picture
    (test_generalisation.py); for this prompt, the trigger alone, they did until the demo
    model's phase 1b taught it to read past unknown words: now 360 steps draw blue circles
    (0/8 purple) and 720 draw purple 8/8 (docs/training.md)."""
    _run(client, account, demo_model, seed=5, steps=720)
