"""LoRAs in task_submit: lora_configs weights, and model_name naming a trained LoRA."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.images.conftest import submit
from tests.conftest import Account, DemoModel
from tests.image_support import add_lora, fetch_image, mean_diff, wait_done


def image_of(client: TestClient, account: Account, **fields: object):  # type: ignore[no-untyped-def]
    task = submit(client, account, select_seed=11, ddim_steps=8, **fields)
    done = wait_done(client, account.token, task["task_id"])
    assert done["state"] == "done", done
    return fetch_image(client, done["images"][0]["large"])


def test_merge_weight_scales_the_lora_and_a_trained_name_applies_it(
        client: TestClient, account: Account, other_account: Account,
        demo_model: DemoModel) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    lora_id = add_lora(services, account.user_id, "stripes", demo_model.path, "ronghe-demo")
    plain = image_of(client, account)
    weights = {w: mean_diff(plain, image_of(client, account, lora_configs=[
        {"versionid": lora_id, "merge_weight": w}])) for w in (0.0, 1.0, 2.0)}
    assert weights[0.0] < 0.5 and 0.5 < weights[1.0] < weights[2.0]
    # The version id may also be given as the model's name.
    by_name = image_of(client, account, lora_configs=[{"versionid": "stripes",
                                                       "merge_weight": 1.0}])
    as_model = image_of(client, account, model_name="stripes")
    assert mean_diff(by_name, as_model) < 0.5 and mean_diff(plain, as_model) > 0.5
    assert mean_diff(plain, image_of(client, account)) < 0.5  # LoRA off again

    # Someone else's LoRA is invisible unless it is public.
    denied = client.post("/api/v1b/task_submit", json={
        "token": other_account.token, "prompt": "x",
        "lora_configs": [{"versionid": lora_id}]})
    assert denied.status_code == 400 and "no model of yours" in denied.json()["msg"]
    services.loras.set_public(lora_id, True)
    allowed = client.post("/api/v1b/task_submit", json={
        "token": other_account.token, "prompt": "x", "output_size": "64x64",
        "lora_configs": [{"versionid": lora_id}]})
    assert allowed.status_code == 200, allowed.text


def test_unusable_loras_fail_at_submit(client: TestClient, account: Account,
                                       demo_model: DemoModel) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    busy = services.loras.create(account.user_id, "half-done", "ronghe-demo")
    other_base = services.loras.create(account.user_id, "for-sdxl", "sdxl-base", state="ready")
    cases = [({"model_name": "half-done"}, "model_name: your model 'half-done' is not ready"),
             ({"lora_configs": [{"versionid": busy.id}]}, "is not ready (state training)"),
             ({"lora_configs": [{"versionid": other_base.id}]},
              "model 'for-sdxl' was trained on 'sdxl-base' and cannot be used with "
              "'ronghe-demo'")]
    for fields, message in cases:
        response = client.post("/api/v1b/task_submit",
                               json={"token": account.token, "prompt": "x", **fields})
        assert response.status_code == 400 and message in response.json()["msg"], response.text
