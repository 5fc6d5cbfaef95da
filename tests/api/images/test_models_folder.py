"""Models you bring, through HTTP: dropped into <data_dir>/models and <data_dir>/loras."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from ronghe.app import create_app
from ronghe.engines.training.export import DIFFUSERS_FILE, KOHYA_FILE, export_files
from ronghe.settings import Settings
from tests.api.images.conftest import submit
from tests.checkpoint_support import write_checkpoint
from tests.conftest import PASSWORD, DemoModel, make_account, make_settings
from tests.image_support import LORA_TARGETS, fetch_image, mean_diff, wait_done

SCAN = "/api/v1b/admin/models/scan"


def lora_files(model_path: Path) -> dict[str, bytes]:
    """One LoRA for the demo UNet, as training exports it: diffusers and kohya format."""
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(model_path / "unet"))
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                        target_modules=LORA_TARGETS)
    unet.add_adapter(config)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.mul_(4.0)
    return export_files(get_peft_model_state_dict(unet), config.to_dict(), 4.0,
                        {"rank": 4, "name": "stripes", "trigger_word": "zq"})


@pytest.fixture
def data_dir(tmp_path: Path, demo_model: DemoModel) -> Path:
    data = tmp_path / "data"
    write_checkpoint(demo_model.path, data / "models" / "shapes-one.safetensors")
    cut = data / "models" / "cut.safetensors"
    cut.write_bytes((data / "models" / "shapes-one.safetensors").read_bytes()[:40_000])
    files = lora_files(demo_model.path)
    (data / "loras").mkdir()
    (data / "loras" / "stripes-d.safetensors").write_bytes(files[DIFFUSERS_FILE])
    (data / "loras" / "stripes-k.safetensors").write_bytes(files[KOHYA_FILE])
    (data / "loras" / "stripes-d.ronghe.json").write_text('{"public": false}')
    return data


@pytest.fixture
def folder_client(data_dir: Path, demo_model: DemoModel) -> Iterator[TestClient]:
    settings: Settings = make_settings(data_dir, image_models=[demo_model.spec()],
                                       cpu_threads=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_dropped_models_serve_and_a_truncated_one_says_why(
        folder_client: TestClient, demo_model: DemoModel) -> None:
    client = folder_client
    alice = make_account(client.app)
    form = client.get("/api/v1b/get_generation_form").json()["info"][0]
    models = {m["name"]: m for m in form["models"]}
    assert {"shapes-one", "cut"} <= set(form["choices"])
    assert models["shapes-one"]["family"] == "demo" and models["shapes-one"]["problem"] is None
    assert "truncated" in models["cut"]["problem"]
    base = client.post("/api/v1b/models/base", json={"token": alice.token}).json()["info"]
    assert {m["model_name"]: m["problem"] is None for m in base["models"]} == {
        "ronghe-demo": True, "shapes-one": True, "cut": False}

    refused = client.post("/api/v1b/task_submit", json={
        "token": alice.token, "prompt": "x", "model_name": "cut", "output_size": "64x64"})
    assert refused.status_code in (400, 503) and "truncated" in refused.json()["msg"]
    task = submit(client, alice, model_name="shapes-one", select_seed=5)
    done = wait_done(client, alice.token, task["task_id"])
    assert done["state"] == "done", done
    assert client.get("/readyz").status_code == 200  # the server stays up

    # A model dropped in while running appears once an admin scans.
    shutil.copytree(demo_model.path, Path(client.app.state.services.settings.models_path)
                    / "shapes-two")
    assert client.post(SCAN, json={"token": alice.token}).status_code == 403
    root = client.app.state.services.auth.add_user("root@example.com", PASSWORD, True)
    token = client.app.state.services.auth.issue_token(root.email).secret
    scanned = client.post(SCAN, json={"token": token}).json()["info"]
    assert {m["name"]: m["family"] for m in scanned["image"]} == {
        "cut": "unknown", "shapes-one": "demo", "shapes-two": "demo"}
    form = client.get("/api/v1b/get_generation_form").json()["info"][0]
    assert "shapes-two" in form["choices"]


def test_lora_files_in_both_formats_apply_by_name(folder_client: TestClient) -> None:
    client = folder_client
    services = client.app.state.services
    root = services.auth.add_user("root@example.com", PASSWORD, True)
    token = services.auth.issue_token(root.email).secret
    # No admin at start: nothing was added; the scan adds them for the admin.
    assert services.loras.list(None, ready_only=False)[1] == 0
    loras = client.post(SCAN, json={"token": token}).json()["info"]["lora"]
    assert {(x["name"], x["family"], x["state"]) for x in loras} == {
        ("stripes-d", "demo", "ready"), ("stripes-k", "demo", "ready")}
    own = client.post("/api/v1b/models/private", json={"token": token}).json()["info"]
    assert {(m["model_name"], m["base_model"]) for m in own["models"]} == {
        ("stripes-d", "demo"), ("stripes-k", "demo")}
    public = client.post("/api/v1b/models/lora", json={"token": token}).json()["info"]
    assert [m["model_name"] for m in public["models"]] == ["stripes-k"]

    class Admin:  # submit()'s account: only the token is used
        pass

    admin = Admin()
    admin.token = token  # type: ignore[attr-defined]

    def image(**fields: object):  # type: ignore[no-untyped-def]
        task = submit(client, admin, select_seed=11, ddim_steps=6, **fields)  # type: ignore[arg-type]
        done = wait_done(client, token, task["task_id"])
        assert done["state"] == "done", done
        return fetch_image(client, done["images"][0]["large"])

    plain = image()
    diffusers_format = image(lora_configs=[{"versionid": "stripes-d", "merge_weight": 1.0}])
    kohya_format = image(lora_configs=[{"versionid": "stripes-k", "merge_weight": 1.0}])
    assert mean_diff(plain, diffusers_format) > 0.5
    assert mean_diff(diffusers_format, kohya_format) < 0.5  # the same LoRA either way
    assert mean_diff(image(model_name="stripes-d"), diffusers_format) < 0.5

    # Public by default: another user may apply the kohya one, not the private one.
    bob = make_account(client.app, "bob@example.com")
    k_id = next(x["id"] for x in loras if x["name"] == "stripes-k")
    d_id = next(x["id"] for x in loras if x["name"] == "stripes-d")
    assert client.post("/api/v1b/task_submit", json={
        "token": bob.token, "prompt": "x", "output_size": "64x64",
        "lora_configs": [{"versionid": k_id}]}).status_code == 200
    assert client.post("/api/v1b/task_submit", json={
        "token": bob.token, "prompt": "x", "output_size": "64x64",
        "lora_configs": [{"versionid": d_id}]}).status_code == 400

    # Removing the file removes the entry.
    (Path(services.settings.loras_path) / "stripes-d.safetensors").unlink()
    client.post(SCAN, json={"token": token})
    assert [x.name for x in services.loras.list(None)[0]] == ["stripes-k"]
