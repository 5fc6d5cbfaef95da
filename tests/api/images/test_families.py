"""FLUX.1, SD 3.x, Z-Image and FLUX.2 [klein] through HTTP, on tiny random-weight models.

The models are built from configs (tools/family_models.py), saved as diffusers folders and
as single transformer files (safetensors and GGUF) into the models folder, as a user drops
real ones.  Random weights show no picture; these tests show that the path a real
checkpoint takes (detection, loading, every mode, LoRAs in the folder, the form) runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.app import create_app
from ronghe.engines.diffusion.families import FAMILIES
from tests.api.images.conftest import upload
from tests.conftest import PASSWORD, Account, DemoModel, make_account, make_settings
from tests.image_support import fetch_image, wait_done
from tools import family_models

SCAN = "/api/v1b/admin/models/scan"
# name in the models folder -> (family, variant)
FOLDERS = {"flux-dev": ("flux", "dev"), "flux-schnell": ("flux", "schnell"),
           "sd35": ("sd3", ""), "zimage": ("zimage", ""),
           "flux2-klein": ("flux2", "distilled")}
SIZE = "128x128"


def lora_file(pipe: Any, family: str, folder: Path) -> Path:
    """A LoRA on the tiny transformer in diffusers' format, as diffusers' scripts save it."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(5)
    pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                            target_modules=list(FAMILIES[family].lora_targets)))
    with torch.no_grad():
        for name, param in pipe.transformer.named_parameters():
            if "lora_B" in name:
                param.mul_(20.0)  # a strong LoRA: it must visibly change the image
    state = get_peft_model_state_dict(pipe.transformer)
    type(pipe).save_lora_weights(str(folder), transformer_lora_layers=state)
    return folder / "pytorch_lora_weights.safetensors"


def kohya_flux_lora(pipe: Any) -> dict[str, torch.Tensor]:
    """A kohya-format FLUX.1 LoRA (the community's format): BFL module names."""
    inner = pipe.transformer.config.num_attention_heads * \
        pipe.transformer.config.attention_head_dim
    torch.manual_seed(6)
    out: dict[str, torch.Tensor] = {}
    for i in range(pipe.transformer.config.num_layers):
        for part in ("img_attn_proj", "txt_attn_proj"):
            key = f"lora_unet_double_blocks_{i}_{part}"
            out[f"{key}.lora_down.weight"] = torch.randn(4, inner)
            out[f"{key}.lora_up.weight"] = torch.randn(inner, 4) * 4
            out[f"{key}.alpha"] = torch.tensor(4.0)
    return out


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model per family (and variant), plus single files, plus LoRAs."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("families")
    models, loras = root / "models", root / "loras"
    models.mkdir()
    loras.mkdir()
    for name, (family, variant) in FOLDERS.items():
        pipe = family_models.build(family, "tiny", variant)
        pipe.save_pretrained(str(models / name))
        if name == "flux-dev":
            family_models.save_transformer_file(pipe, models / "flux-file.safetensors")
            family_models.save_gguf(pipe, models / "flux-q8.gguf")
            save_file(kohya_flux_lora(pipe), str(loras / "flux-kohya.safetensors"))
        if name == "zimage":
            family_models.save_gguf(pipe, models / "zimage-q8.gguf", arch="zimage")
        if name in ("flux-dev", "sd35", "zimage", "flux2-klein"):
            made = lora_file(pipe, family, root / f"lora-{name}")
            shutil.copy(made, loras / f"{name}-lora.safetensors")
    return root


@pytest.fixture(scope="module")
def family_client(models_root: Path, demo_model: DemoModel,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("data")
    settings = make_settings(data, image_models=[demo_model.spec()], cpu_threads=1,
                             models_dir=models_root / "models",
                             loras_dir=models_root / "loras",
                             image_previews=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        services.auth.add_user("root@example.com", PASSWORD, True)
        token = services.auth.issue_token("root@example.com").secret
        assert client.post(SCAN, json={"token": token}).status_code == 200  # adds the LoRAs
        yield client


@pytest.fixture(scope="module")
def alice(family_client: TestClient) -> Account:
    return make_account(family_client.app)


def render(client: TestClient, account: Account, **fields: Any) -> list[Image.Image]:
    body = {"token": account.token, "prompt": "a red fox in the snow", "n_images": 1,
            "output_size": SIZE, "ddim_steps": 3, "select_seed": 7, **fields}
    response = client.post("/api/v1b/task_submit", json=body)
    assert response.status_code == 200, response.text
    done = wait_done(client, account.token, response.json()["task_id"])
    assert done["state"] == "done", done
    return [fetch_image(client, image["large"]) for image in done["images"]]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_the_form_lists_each_family_with_its_sizes_and_steps(family_client: TestClient) -> None:
    form = family_client.get("/api/v1b/get_generation_form").json()["info"][0]
    models = {m["name"]: m for m in form["models"]}
    expected = {"flux-dev": ("flux", 28), "flux-schnell": ("flux", 4), "sd35": ("sd3", 28),
                "zimage": ("zimage", 9), "flux2-klein": ("flux2", 4),
                "flux-file": ("flux", 28), "flux-q8": ("flux", 28),
                "zimage-q8": ("zimage", 9)}
    for name, (family, steps) in expected.items():
        assert models[name]["family"] == family, models[name]
        assert models[name]["problem"] is None, models[name]
        assert (models[name]["min_size"], models[name]["max_size"]) == (128, 2048)
        assert models[name]["default_steps"] == steps and models[name]["size_step"] == 16
        assert models[name]["family_label"] == FAMILIES[family].label
        assert "controlnet" not in models[name]["modes"]
        assert models[name]["inpainting_fills"] == [1, 0]
    assert models["flux-dev"]["guidance"] == "embedded"
    assert models["flux-dev"]["default_scale"] == 3.5
    assert models["flux-schnell"]["guidance"] == "none"
    assert not models["flux-dev"]["negative_prompt"] and models["sd35"]["negative_prompt"]


@pytest.mark.parametrize("model", ["flux-dev", "flux-schnell", "sd35", "zimage",
                                   "flux2-klein", "flux-file", "flux-q8", "zimage-q8"])
def test_each_family_draws_edits_and_inpaints(family_client: TestClient, alice: Account,
                                              model: str) -> None:
    client = family_client
    first = render(client, alice, model_name=model, n_images=2)
    assert [im.size for im in first] == [(128, 128)] * 2
    again = render(client, alice, model_name=model, n_images=2)
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(first, again, strict=True))

    source = Image.new("RGB", (128, 128), (30, 160, 220))
    url = upload(client, alice, source)
    edited = render(client, alice, model_name=model, init_img=url, strength=0.6)[0]
    assert edited.size == (128, 128)
    assert not np.array_equal(pixels(edited), pixels(source))

    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, (0, 0, 64, 128))  # repaint the left half
    painted = render(client, alice, model_name=model, init_img=url,
                     mask_img=upload(client, alice, mask), strength=1.0)[0]
    # The kept half is the source, within the JPEG encoding's rounding (a 16 px block off
    # the mask's edge, where its blocks hold painted pixels too).
    right = pixels(painted)[:, 80:]
    assert np.abs(right - pixels(source)[:, 80:]).max() <= 3
    assert np.abs(pixels(painted)[:, :56] - pixels(source)[:, :56]).mean() > 5
    # A1111's latent fills are the Stable Diffusion UNets' (their pipelines start elsewhere).
    latent = client.post("/api/v1b/task_submit", json={
        "token": alice.token, "prompt": "x", "model_name": model, "output_size": SIZE,
        "init_img": url, "mask_img": upload(client, alice, mask), "inpainting_fill": 2})
    assert latent.status_code == 400
    assert latent.json()["msg"].startswith("inpainting_fill: 2 (latent noise) applies to "
                                           "Stable Diffusion UNets")


@pytest.mark.parametrize(("model", "lora"), [
    ("flux-dev", "flux-dev-lora"), ("flux-dev", "flux-kohya"), ("sd35", "sd35-lora"),
    ("zimage", "zimage-lora"), ("flux2-klein", "flux2-klein-lora")])
def test_dropped_loras_apply_to_their_family(family_client: TestClient, alice: Account,
                                             model: str, lora: str) -> None:
    client = family_client
    listed = client.post("/api/v1b/models/lora", json={"token": alice.token}).json()["info"]
    found = {m["model_name"]: m for m in listed["models"]}
    assert lora in found, sorted(found)
    plain = render(client, alice, model_name=model)[0]
    with_lora = render(client, alice, model_name=model,
                       lora_configs=[{"versionid": found[lora]["versionid"]}])[0]
    assert np.abs(pixels(plain) - pixels(with_lora)).mean() > 1
    off_again = render(client, alice, model_name=model)[0]
    assert np.array_equal(pixels(plain), pixels(off_again))


def test_a_lora_of_another_family_and_controlnet_are_refused_by_name(
        family_client: TestClient, alice: Account) -> None:
    client = family_client
    listed = client.post("/api/v1b/models/lora", json={"token": alice.token}).json()["info"]
    sd3_lora = {m["model_name"]: m for m in listed["models"]}["sd35-lora"]["versionid"]
    wrong = client.post("/api/v1b/task_submit", json={
        "token": alice.token, "prompt": "x", "model_name": "flux-dev", "output_size": SIZE,
        "lora_configs": [{"versionid": sd3_lora}]})
    assert wrong.status_code == 400
    assert "is for sd3 models and cannot be used with 'flux-dev'" in wrong.json()["msg"]

    url = upload(client, alice, Image.new("RGB", (128, 128), "white"))
    control = client.post("/api/v1b/task_submit", json={
        "token": alice.token, "prompt": "x", "model_name": "flux-dev", "output_size": SIZE,
        "controlnet_model": "canny", "init_img": url})
    assert control.status_code == 400
    assert control.json()["msg"].startswith("controlnet_model: FLUX.1 models (flux-dev) "
                                            "take no ControlNet")

    odd = client.post("/api/v1b/task_submit", json={
        "token": alice.token, "prompt": "x", "model_name": "flux-dev",
        "output_size": "136x136"})
    assert odd.status_code == 400
    assert "multiple of 16 from 128 to 2048" in odd.json()["msg"]
