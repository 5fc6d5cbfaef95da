"""train_submit / train_progress / train_cancel / get_train_form through HTTP."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from safetensors.torch import load as load_safetensors

from ronghe.engines.diffusion.output import read_parameters
from ronghe.engines.training.presets import MAIN_BODIES
from tests.conftest import Account
from tests.training_support import (
    concept_dataset,
    concept_images,
    make_dataset,
    progress,
    submit,
    upload,
    wait_training,
)

SUBMIT = "/api/v1b/train_submit"


def test_train_form_lists_trainable_models_and_main_bodies(client: TestClient) -> None:
    body = client.get("/api/v1b/get_train_form").json()
    assert body["code"] == 0
    assert body["info"]["base_model"] == ["ronghe-demo"]
    assert body["info"]["main_body"] == list(MAIN_BODIES)
    assert body["info"]["presets"]["Style"]["steps"] > 0


def test_short_training_runs_to_a_ready_model(client: TestClient, account: Account) -> None:
    dataset = concept_dataset(client, account.token, 3)[0]
    task_id = submit(client, account.token, [dataset], steps=4, base_model="自动选择",
                     description="four steps")
    seen: list[dict] = []
    final = wait_training(client, account.token, task_id, timeout=240, seen=seen)
    assert final["state"] == "done", final
    assert final["training_progress"] == 1.0 and final["step"] == final["total_steps"] == 4
    assert final["model_name"] == "stars-lora" and final["trigger_word"] == "purple star"
    assert final["description"] == "four steps" and final["main_body"] == "Style"
    assert final["create_time"][4] == "-" and final["error_msg"] == ""
    assert isinstance(final["loss"], float) and final["eta_seconds"] == 0
    # The last step always renders a preview, and its URL serves a PNG.
    assert final["samples"][-1]["step"] == 4 and len(final["preview_images"]) >= 1
    preview = client.get(final["preview_images"][-1].replace("http://testserver", ""))
    assert preview.status_code == 200 and preview.content[:4] == b"\x89PNG"
    # Like every PNG Ronghe writes, it carries A1111's parameters text (issue 29).
    assert "<lora:stars-lora:1>" in read_parameters(preview.content)
    # The loss curve: one point per step of a short run, each the loss of that step; it
    # grew with the steps while the run went (each answer had a point for every step done).
    history = final["loss_history"]
    assert [x for x, _ in history] == [1, 2, 3, 4]
    assert all(isinstance(y, float) and y > 0 for _, y in history)
    training = [b for b in seen if b["state"] == "running" and b["phase"] == "training"]
    assert all(len(b["loss_history"]) == b["step"] and b["loss_history"] == history[:b["step"]]
               for b in training)
    assert final["loss"] == pytest.approx(sum(y for _, y in history) / 4, abs=1e-5)
    fractions = [b["training_progress"] for b in seen]
    assert fractions == sorted(fractions) and 0 <= fractions[0] <= 1

    services = client.app.state.services  # type: ignore[attr-defined]
    lora = services.loras.find(account.user_id, "stars-lora")
    assert lora is not None and lora.state == "ready" and lora.id == final["model_id"]
    assert lora.meta["steps"] == 4 and lora.meta["rank"] == lora.meta["alpha"]
    storage = services.files.storage
    weights = load_safetensors(storage.get(f"{lora.weights_key}/pytorch_lora_weights.safetensors"))
    assert weights and all(k.startswith("unet.") for k in weights)
    kohya = load_safetensors(storage.get(f"{lora.weights_key}/kohya.safetensors"))
    assert any(k.startswith("lora_unet_") and k.endswith(".alpha") for k in kohya)
    assert b'"trigger_word": "purple star"' in storage.get(f"{lora.weights_key}/ronghe-lora.json")
    # The checkpoint folder is scratch: gone once the model is saved.
    assert not (services.settings.data_dir / "training" / task_id).exists()


def test_submit_validation_names_the_field(client: TestClient, account: Account,
                                           other_account: Account) -> None:
    dataset = concept_dataset(client, account.token, 1)[0]
    theirs = concept_dataset(client, other_account.token, 1)[0]
    base = {"token": account.token, "name": "m", "dataset": [dataset]}
    cases = [
        ({"dataset": [999]}, 400, "dataset[0]: no dataset 999 of yours"),
        ({"dataset": [dataset, theirs]}, 400, f"dataset[1]: no dataset {theirs} of yours"),
        ({"dataset": []}, 400, "dataset"),
        ({"main_body": "Cars"}, 400, "main_body must be one of Style, Human, Architecture"),
        ({"base_model": "nope"}, 400, "base_model must be one of 自动选择, ronghe-demo"),
        ({"nsfw": 2}, 400, "nsfw"),
        ({"name": ""}, 400, "name"),
        ({"name": "ronghe-demo"}, 400, "is the name of a base model"),
        ({"steps": 0}, 400, "steps"),
    ]
    for fields, status, text in cases:
        response = client.post(SUBMIT, json={**base, **fields})
        body = response.json()
        assert response.status_code == status and body["code"] == status, (fields, body)
        assert text in body["msg"], (fields, body)
    assert client.post(SUBMIT, json={"name": "m", "dataset": [dataset]}).status_code == 401


def test_empty_dataset_and_duplicate_name_are_refused(client: TestClient,
                                                      account: Account) -> None:
    urls = upload(client, account.token, concept_images(1, size=32))
    dataset = make_dataset(client, account.token, urls)
    removed = client.post("/api/v1b/dataset/delete_images",
                          json={"token": account.token, "dataset": dataset, "images": urls})
    assert removed.json() == {"code": 0, "info": "", "msg": "OK"}
    response = client.post(SUBMIT, json={"token": account.token, "name": "m",
                                         "dataset": [dataset]})
    assert response.status_code == 400 and "has no images" in response.json()["msg"]

    full = concept_dataset(client, account.token, 1)[0]
    first = submit(client, account.token, [full], name="dup", steps=200)
    again = client.post(SUBMIT, json={"token": account.token, "name": "dup",
                                      "dataset": [full]})
    assert again.status_code == 409 and "already have a model named 'dup'" in again.json()["msg"]
    # Once cancelled, the name is free again.
    client.post("/api/v1b/train_cancel", json={"token": account.token, "task_id": first})
    wait_training(client, account.token, first, timeout=120)
    submit(client, account.token, [full], name="dup", steps=1)


def test_progress_and_cancel_are_owner_only(client: TestClient, account: Account,
                                            other_account: Account) -> None:
    dataset, _ = concept_dataset(client, account.token, 1)
    task_id = submit(client, account.token, [dataset], steps=200)
    for path in ("/api/v1b/train_progress", "/api/v1b/train_cancel"):
        response = client.post(path, json={"token": other_account.token, "task_id": task_id})
        assert response.status_code == 404, response.text
    assert progress(client, account.token, task_id)["state"] in ("pending", "running")
    client.post("/api/v1b/train_cancel", json={"token": account.token, "task_id": task_id})
    assert wait_training(client, account.token, task_id, timeout=120)["state"] == "cancelled"


def test_cancel_stops_a_running_training_within_a_few_steps(client: TestClient,
                                                            account: Account) -> None:
    dataset, _ = concept_dataset(client, account.token, 2)
    task_id = submit(client, account.token, [dataset], steps=5000)
    running = wait_training(client, account.token, task_id, timeout=180,
                            until=("running",))
    while running["step"] < 2:
        time.sleep(0.05)
        running = progress(client, account.token, task_id)
    response = client.post("/api/v1b/train_cancel",
                           json={"token": account.token, "task_id": task_id})
    assert response.status_code == 200 and response.json()["info"]["task_id"] == task_id
    final = wait_training(client, account.token, task_id, timeout=60)
    assert final["state"] == "cancelled" and final["step"] < running["step"] + 10
    services = client.app.state.services  # type: ignore[attr-defined]
    lora = services.loras.find(account.user_id, "stars-lora")
    assert lora is not None and lora.state == "cancelled"
    # The worker is free again: a new short training runs to the end.
    dataset, _ = concept_dataset(client, account.token, 1)
    other = submit(client, account.token, [dataset], name="next", steps=2)
    assert wait_training(client, account.token, other, timeout=180)["state"] == "done"
