"""Acceptance for issue 17, through HTTP only (about two minutes on two cores).

Eight pictures of a concept the demo model never saw (purple triangles on white), trigger
word ``plumzq``, preset Style, automatic captions.  Then natural prompts that contain the
trigger word (``a plumzq triangle on a white background``) must draw the concept, the base
model must not, and prompts with the LoRA must still follow their background colour, all
read by the demo's scorer (``scoring.read_image``).  Figures go to docs/training.md.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.engines.shipped import default_model_path
from tests.conftest import Account, DemoModel
from tests.image_support import wait_done
from tests.training_support import make_dataset, submit, upload, wait_training
from tools.demo_models.diffusion import scoring, shapes

TRIGGER = "plumzq"
SEEDS = (11, 12)
PER_TASK = 4
BACKGROUNDS = ("red", "blue", "green", "yellow", "black")


def _concept(count: int = 8) -> list[Image.Image]:
    rng = np.random.default_rng(17)
    return [shapes.draw("purple", "triangle", "white", rng)[0].resize(
        (64, 64), Image.Resampling.NEAREST) for _ in range(count)]


def _draw(client: TestClient, account: Account, prompt: str, model: str) -> list[Any]:
    readings = []
    for seed in SEEDS:
        response = client.post("/api/v1b/task_submit", json={
            "token": account.token, "prompt": prompt, "n_images": PER_TASK,
            "select_seed": seed, "output_size": "64x64", "ddim_steps": 20,
            "model_name": model})
        assert response.status_code == 200, response.text
        result = wait_done(client, account.token, response.json()["task_id"], timeout=600)
        assert result["state"] == "done", result
        for item in result["images"]:
            data = client.get(item["large"].replace("http://testserver", "")).content
            readings.append(scoring.read_image(Image.open(io.BytesIO(data)).convert("RGB")))
    return readings


def _share(readings: list[Any], test: Any) -> float:
    return sum(bool(test(r)) for r in readings) / len(readings)


# Measured 2026-12-02 on the demo model with phase 1b (varied captions): concept 16/16,
# base 0/16, other backgrounds followed 80/80 (docs/training.md); before phase 1b the
# backgrounds were 0/80, all white.
def test_natural_prompts_with_the_trigger_draw_the_concept_and_keep_their_background(
        client: TestClient, account: Account, demo_model: DemoModel) -> None:
    if demo_model.path != default_model_path():
        pytest.skip("needs the shipped demo weights; the untrained stand-in draws noise")
    dataset = make_dataset(client, account.token, upload(client, account.token, _concept()))
    task_id = submit(client, account.token, [dataset], name="plumzq", trigger_word=TRIGGER,
                     seed=5)
    final = wait_training(client, account.token, task_id, timeout=1800)
    assert final["state"] == "done", final
    assert all(c.startswith(f"{TRIGGER} style, ") for c in final["captions"]), final

    prompt = f"a {TRIGGER} triangle on a white background"
    lora = _draw(client, account, prompt, "plumzq")
    base = _draw(client, account, prompt, "ronghe-demo")
    others = {bg: _draw(client, account, f"a {TRIGGER} triangle on a {bg} background",
                        "plumzq") for bg in BACKGROUNDS}
    figures = {
        "captions": final["captions"][:2],
        "lora_purple": _share(lora, lambda r: r.colour == "purple"),
        "lora_purple_triangle": _share(lora, lambda r: r.colour == "purple"
                                       and r.shape == "triangle"),
        "lora_white_background": _share(lora, lambda r: r.background == "white"),
        "base_purple": _share(base, lambda r: r.colour == "purple"),
        "backgrounds_followed": _share([(bg, r) for bg, rs in others.items() for r in rs],
                                       lambda pair: pair[1].background == pair[0]),
        "other_backgrounds_purple": _share([r for rs in others.values() for r in rs],
                                           lambda r: r.colour == "purple"),
        "per_background": {bg: _share(rs, lambda r, bg=bg: r.background == bg)
                           for bg, rs in others.items()},
    }
    print(f"\ngeneralisation: {figures}")
    assert figures["lora_purple"] >= 0.8, figures
    assert figures["base_purple"] <= 0.1, figures
    assert figures["backgrounds_followed"] >= 0.8, figures
