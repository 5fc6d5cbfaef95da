"""Helpers for upload, dataset and training tests: pictures, HTTP calls, progress polling."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
from PIL import Image

from tools.demo_models.diffusion import shapes

# The concept the demo model never saw: the colour purple (and the star shape).
CONCEPT = ("purple", "star", "white")
TRIGGER = "purple star"


def concept_images(count: int = 8, size: int = 64, seed: int = 0) -> list[Image.Image]:
    """Purple stars on white, at varied places and sizes, scaled up like real uploads."""
    rng = np.random.default_rng(seed)
    return [shapes.draw(*CONCEPT, rng)[0].resize((size, size), Image.Resampling.NEAREST)
            for _ in range(count)]


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def upload(client: Any, token: str, images: list[Image.Image]) -> list[str]:
    files = [("init_img", (f"img{i}.png", encode(im), "image/png"))
             for i, im in enumerate(images)]
    response = client.post("/api/v1b/upload_imgs", files=files,
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()["info"]


def make_dataset(client: Any, token: str, urls: list[str], name: str = "stars") -> int:
    response = client.post("/api/v1b/dataset", json={"token": token, "name": name,
                                                     "description": "d", "images": urls})
    assert response.status_code == 200, response.text
    return response.json()["info"]["dataset_id"]


def concept_dataset(client: Any, token: str, count: int) -> tuple[int, list[str]]:
    """``count`` concept images uploaded at 32 px and made into one dataset: (id, URLs)."""
    urls = upload(client, token, concept_images(count, size=32))
    return make_dataset(client, token, urls), urls


def submit(client: Any, token: str, dataset_ids: list[int], **fields: Any) -> str:
    body = {"token": token, "name": "stars-lora", "trigger_word": TRIGGER,
            "main_body": "Style", "nsfw": 0, "dataset": dataset_ids, **fields}
    response = client.post("/api/v1b/train_submit", json=body)
    assert response.status_code == 200, response.text
    return response.json()["info"]["task_id"]


def progress(client: Any, token: str, task_id: str) -> dict[str, Any]:
    response = client.post("/api/v1b/train_progress", json={"token": token, "task_id": task_id})
    assert response.status_code == 200, response.text
    return response.json()


def wait_training(client: Any, token: str, task_id: str, timeout: float = 300,
                  until: tuple[str, ...] = ("done", "failed", "cancelled"),
                  seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = progress(client, token, task_id)
        if seen is not None:
            seen.append(body)
        if body["state"] in until:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"training {task_id} still {body['state']} after {timeout}s")
        time.sleep(0.1)
