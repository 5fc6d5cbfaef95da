"""Every bad task_submit value fails at submit with the field and what is allowed."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.images.conftest import upload
from tests.conftest import Account
from tests.image_support import drawn

CASES: list[tuple[dict[str, Any], str]] = [
    ({"model_name": "sd-xl"}, "model_name: unknown model 'sd-xl'; available: ronghe-demo, "
                              "Artist_V0.1.3"),
    ({"model_name": 5}, "model_name: must be a string"),
    ({"prompt": "x" * 2001}, "prompt: must be at most 2000 characters (got 2001)"),
    ({"prompt": ["a"]}, "prompt: must be a string"),
    ({"neg_prompt": "x" * 2001}, "neg_prompt: must be at most 2000 characters"),
    ({"n_images": 0}, "n_images: must be an integer 1-8 (got 0)"),
    ({"n_images": 9}, "n_images: must be an integer 1-8 (got 9)"),
    ({"n_images": 2.5}, "n_images: must be an integer 1-8 (got 2.5)"),
    ({"n_images": "two"}, 'n_images: must be an integer 1-8 (got "two")'),
    ({"scale": 0.5}, "scale: must be a number 1-20 (got 0.5)"),
    ({"scale": 21}, "scale: must be a number 1-20 (got 21)"),
    ({"select_seed": -2}, "select_seed: must be an integer from -1 to 4294967295"),
    ({"select_seed": 2**32}, "select_seed: must be an integer from -1 to 4294967295"),
    ({"output_size": "960"}, "output_size must be WxH with each side a multiple of 8 from 64 "
                             "to 2048 for model 'ronghe-demo'"),
    ({"output_size": "100x100"}, "output_size must be WxH with each side a multiple of 8"),
    ({"output_size": "4096x512"}, "(got '4096x512')"),
    ({"output_size": "56x56"}, "(got '56x56')"),
    ({"strength": -0.1}, "strength: must be a number 0-1 (got -0.1)"),
    ({"strength": "high"}, "strength: must be a number 0-1"),
    ({"ddim_steps": 0}, "ddim_steps: must be an integer 1-150 (got 0)"),
    ({"ddim_steps": 151}, "ddim_steps: must be an integer 1-150 (got 151)"),
    ({"init_img": "http://169.254.169.254/latest/meta-data"},
     "init_img must be an image URL returned by upload_imgs"),
    ({"init_img": "http://testserver/files/00000000-0000-0000-0000-000000000000?x=1"},
     "init_img: no uploaded image of yours"),
    ({"controlnet_model": "openpose", "init_img": "UPLOAD"},
     "controlnet_model: ControlNet 'openpose' is not available for model 'ronghe-demo'; "
     "available: canny"),
    ({"controlnet_model": "canny"}, "init_img: a control image is required for ControlNet"),
    ({"cn_configs": [{"cn": "depth", "img": "UPLOAD"}]},
     "cn_configs[0].cn: ControlNet 'depth' is not available"),
    ({"cn_configs": [{"weight": 1}]}, "cn_configs[0].cn is required"),
    ({"cn_configs": [{"cn": "canny", "weight": 2.5}]}, "cn_configs[0].weight: must be a "
                                                       "number 0-2 (got 2.5)"),
    ({"cn_configs": [{"cn": "canny", "guidance_start": 1.5}]},
     "cn_configs[0].guidance_start: must be a number 0-1"),
    ({"cn_configs": [{"cn": "canny", "guidance_end": -1}]},
     "cn_configs[0].guidance_end: must be a number 0-1"),
    ({"cn_configs": [{"cn": "canny", "guidance_start": 0.8, "guidance_end": 0.2}]},
     "guidance_start (0.8) must not exceed guidance_end (0.2)"),
    ({"cn_configs": [{"cn": "canny", "img": "UPLOAD",
                      "config": {"control_processor": "hed"}}]},
     "cn_configs[0].config.control_processor must be one of canny, invert, none for "
     "ControlNet 'canny' (got 'hed')"),
    ({"cn_configs": [{"cn": "canny", "config": {"low_threshold": 0}}]},
     "cn_configs[0].config.low_threshold: must be an integer 1-255 (got 0)"),
    ({"cn_configs": [{"cn": "canny", "config": {"high_threshold": 256}}]},
     "cn_configs[0].config.high_threshold: must be an integer 1-255 (got 256)"),
    ({"cn_configs": [{"cn": "canny", "config": {"low_threshold": 200,
                                                "high_threshold": 100}}]},
     "low_threshold (200) must not exceed high_threshold (100)"),
    ({"cn_configs": [{"cn": "canny", "img": "UPLOAD"}] * 4}, "cn_configs: "),
    ({"controlnet_model": "canny", "init_img": "UPLOAD",
      "cn_configs": [{"cn": "canny", "img": "UPLOAD"}] * 3},
     "cn_configs must be at most 3 ControlNet units, controlnet_model included (got 4)"),
    ({"lora_configs": [{"versionid": 999}]},
     "lora_configs[0].versionid: no model of yours with versionid 999"),
    ({"lora_configs": [{"versionid": True}]}, "lora_configs[0].versionid: must be a model id"),
    ({"lora_configs": [{"versionid": 1, "merge_weight": 3}]},
     "lora_configs[0].merge_weight: must be a number 0-2 (got 3)"),
    ({"lora_configs": [{"versionid": i} for i in range(6)]}, "lora_configs: "),
    ({"add_prompt": "maybe"}, 'add_prompt: must be true or false (got "maybe")'),
]


def test_bad_values_name_the_field_and_the_allowed_values(client: TestClient,
                                                         account: Account) -> None:
    url = upload(client, account, drawn("red", "circle", "blue"))

    def swap(value: Any) -> Any:
        if value == "UPLOAD":
            return url
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    # One app for all cases (an app per case would cost most of the test time).
    wrong = []
    for fields, message in CASES:
        body = {"token": account.token, "prompt": "a red circle", **swap(fields)}
        response = client.post("/api/v1b/task_submit", json=body)
        answer = response.json()
        if (response.status_code, answer.get("code"), answer.get("info")) != (400, 400, None) \
                or message not in answer.get("msg", ""):
            wrong.append(f"{fields}: {response.status_code} {answer}")
    assert not wrong, "\n".join(wrong)
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.tasks.list(account.user_id) == []  # nothing was queued


def test_a_non_image_upload_is_refused(client: TestClient, account: Account) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    info = services.files.save(account.user_id, b"plain text", "text/plain", "upload")
    url = services.files.url(info, "http://testserver/")
    response = client.post("/api/v1b/task_submit",
                           json={"token": account.token, "prompt": "x", "init_img": url})
    assert response.status_code == 400 and response.json()["msg"].endswith("is not an image")


def test_nulls_mean_defaults_and_unknown_fields_are_ignored(client: TestClient,
                                                            account: Account) -> None:
    response = client.post("/api/v1b/task_submit", json={
        "token": account.token, "prompt": "a red circle", "n_images": None, "scale": None,
        "ddim_steps": None, "output_size": "64x64", "sensitive_limit_value": 0.5})
    assert response.status_code == 200, response.text
    services = client.app.state.services  # type: ignore[attr-defined]
    params = services.tasks.get(response.json()["task_id"]).params
    assert (params["n_images"], params["steps"], params["scale"]) == (2, 20, 5.0)
