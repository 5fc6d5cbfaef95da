"""LoRA training on FLUX.1 and SDXL through HTTP: a tiny random-weight model dropped into the
models folder (tools/family_models.py) is trained by ``train_submit`` and then generated
with by name (``task_submit`` ``model_name``), as a real checkpoint would be.

Random weights show no concept; what these show is that the path a real FLUX or SDXL model
takes (trainable listing, the family's objective and preset, export, the trained LoRA
applied by the image engine) runs end to end.  A high learning rate makes three steps
enough to change the pictures visibly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors.torch import load as load_safetensors

from ronghe.app import create_app
from ronghe.engines.diffusion.families import FAMILIES
from tests.conftest import Account, DemoModel, make_account, make_settings
from tests.image_support import fetch_image, wait_done
from tests.training_support import TRIGGER, concept_images, submit, upload, wait_training
from tools import family_models

PROMPT = f"{TRIGGER} style, a purple star on a white background"


@pytest.fixture(scope="module")
def family_client(demo_model: DemoModel,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("train-families")
    models = root / "models"
    models.mkdir()
    family_models.save("flux", models / "flux-dev", "dev")
    family_models.save("sdxl", models / "sdxl-tiny")
    settings = make_settings(root / "data", image_models=[demo_model.spec()], cpu_threads=1,
                             models_dir=models, loras_dir=root / "loras",
                             image_worker_process=False, image_previews=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def alice(family_client: TestClient) -> Account:
    return make_account(family_client.app)


def _dataset(client: TestClient, account: Account, size: int) -> int:
    """Four pictures with the user's own captions (no captioner run)."""
    urls = upload(client, account.token, concept_images(4, size=size))
    response = client.post("/api/v1b/dataset", json={
        "token": account.token, "name": "stars", "description": "d", "images": urls,
        "captions": ["a purple star on a white background"] * len(urls)})
    assert response.status_code == 200, response.text
    return int(response.json()["info"]["dataset_id"])


def _render(client: TestClient, account: Account, model: str, size: int) -> np.ndarray:
    response = client.post("/api/v1b/task_submit", json={
        "token": account.token, "prompt": PROMPT, "model_name": model, "n_images": 1,
        "output_size": f"{size}x{size}", "ddim_steps": 3, "select_seed": 7})
    assert response.status_code == 200, response.text
    done = wait_done(client, account.token, response.json()["task_id"], timeout=120)
    assert done["state"] == "done", done
    return np.asarray(fetch_image(client, done["images"][0]["large"]).convert("RGB"),
                      dtype=np.int16)


def _train(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    task_id = submit(client, account.token, [_dataset(client, account, 64)], steps=3, rank=4,
                     learning_rate=0.05, seed=1, **fields)
    final = wait_training(client, account.token, task_id, timeout=180)
    assert final["state"] == "done", final
    assert final["step"] == final["total_steps"] == 3 and final["training_progress"] == 1.0
    return final


def _stored(client: TestClient, account: Account, name: str) -> tuple[Any, Any, Any]:
    services = client.app.state.services  # type: ignore[attr-defined]
    lora = services.loras.find(account.user_id, name)
    assert lora is not None and lora.state == "ready"
    storage = services.files.storage
    weights = load_safetensors(storage.get(f"{lora.weights_key}/pytorch_lora_weights.safetensors"))
    kohya = load_safetensors(storage.get(f"{lora.weights_key}/kohya.safetensors"))
    sidecar = json.loads(storage.get(f"{lora.weights_key}/ronghe-lora.json"))
    return weights, kohya, sidecar


def test_train_form_lists_the_folder_models_that_train(family_client: TestClient) -> None:
    form = family_client.get("/api/v1b/get_train_form").json()["info"]
    assert {"flux-dev", "sdxl-tiny", "ronghe-demo"} <= set(form["base_model"])


def test_a_flux_lora_trains_and_draws_by_name(family_client: TestClient,
                                              alice: Account) -> None:
    client = family_client
    final = _train(client, alice, name="flux-stars", base_model="flux-dev", resolution=128)
    # The last step renders a preview at the training size.
    preview = fetch_image(client, final["preview_images"][-1])
    assert preview.size == (128, 128)

    weights, kohya, sidecar = _stored(client, alice, "flux-stars")
    assert weights and all(k.startswith("transformer.") for k in weights)
    assert any("single_transformer_blocks" in k for k in weights)
    assert any(k.startswith("lora_unet_double_blocks_0_img_attn_qkv") for k in kohya)
    assert sidecar["family"] == "flux" and sidecar["resolution"] == 128
    assert sidecar["target_modules"] == list(FAMILIES["flux"].lora_targets)
    assert sidecar["precision"] == "fp32, adamw"  # the CPU's

    base = _render(client, alice, "flux-dev", 128)
    trained = _render(client, alice, "flux-stars", 128)
    assert trained.shape == base.shape == (128, 128, 3)
    assert np.abs(trained - base).mean() > 1
    # The LoRA is off again for the base model.
    assert np.array_equal(_render(client, alice, "flux-dev", 128), base)


def test_an_sdxl_lora_trains_and_draws_by_name(family_client: TestClient,
                                               alice: Account) -> None:
    client = family_client
    _train(client, alice, name="sdxl-stars", base_model="sdxl-tiny", resolution=64)
    weights, kohya, sidecar = _stored(client, alice, "sdxl-stars")
    assert weights and all(k.startswith("unet.") for k in weights)
    assert any(k.startswith("lora_unet_") for k in kohya) and sidecar["family"] == "sdxl"
    base = _render(client, alice, "sdxl-tiny", 64)
    assert np.abs(_render(client, alice, "sdxl-stars", 64) - base).mean() > 1


def test_a_resolution_off_the_grid_is_refused_by_name(family_client: TestClient,
                                                       alice: Account) -> None:
    client = family_client
    dataset = _dataset(client, alice, 32)
    for value, text in ((100, "resolution: must be a multiple of 16 (got 100)"),
                        (16, "resolution: must be an integer 32-2048 (got 16)")):
        response = client.post("/api/v1b/train_submit", json={
            "token": alice.token, "name": "odd", "dataset": [dataset],
            "base_model": "flux-dev", "resolution": value})
        assert response.status_code == 400 and response.json()["msg"] == text, response.text
