"""The spec's own examples, verbatim but for the URL and the token."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.image_support import fetch_image, wait_done

# fusion-api.md, task_submit "python示例" (comments dropped, token swapped in below).
PYTHON_SUBMIT = {
    "model_name": "Artist_V0.1.3",
    "prompt": "one girl, beautiful",
    "neg_prompt": "unsafe",
    "n_images": 2,
    "scale": 7,
    "output_size": "960x960",
    "select_seed": -1,
    "init_img": "",
    "controlnet_model": "",
    "token": "",
}

# fusion-api.md, task_submit "curl 示例" body, trailing comma included.
CURL_SUBMIT = """{
    "model_name": "Artist_V0.1.3",
    "prompt": "one girl, beautiful",
    "neg_prompt": "unsafe",
    "n_images": 2,
    "scale": 7,
    "output_size": "960x960",
    "select_seed": -1,
    "token": "TOKEN",
    "init_img": "",
    "controlnet_model": "",
  }"""

CURL_RESULT = """{
        "task_id": "TASK",
        "token": "TOKEN",
  }"""


def test_python_submit_and_result_examples(client: TestClient, account: Account) -> None:
    data = {**PYTHON_SUBMIT, "token": account.token}
    response = client.post("/api/v1b/task_submit", json=data)
    assert response.status_code == 200
    body = response.json()
    # The spec's flat {task_id}, and the same under info for the later clients.
    assert body == {"task_id": body["task_id"], "code": 0, "msg": "",
                    "info": {"task_id": body["task_id"]}}
    result = client.post("/api/v1b/task_result",
                         json={"task_id": body["task_id"], "token": account.token})
    assert response.status_code == 200
    assert result.json()["state"] in ("pending", "running", "done")
    done = wait_done(client, account.token, body["task_id"])
    assert done["state"] == "done" and done["error_msg"] == ""
    assert [im["save_index"] for im in done["images"]] == [0, 1]
    for image in done["images"]:
        assert image["share"] is False and image["shareable"] is True
        assert fetch_image(client, image["large"]).size == (960, 960)
        assert max(fetch_image(client, image["middle"]).size) == 512


def test_curl_examples_with_their_trailing_commas(client: TestClient, account: Account) -> None:
    headers = {"Content-Type": "application/json"}
    response = client.post("/api/v1b/task_submit", headers=headers,
                           content=CURL_SUBMIT.replace("TOKEN", account.token))
    assert response.status_code == 200, response.text
    task_id = response.json()["task_id"]
    body = CURL_RESULT.replace("TOKEN", account.token).replace("TASK", task_id)
    result = client.post("/api/v1b/task_result", headers=headers, content=body)
    assert result.status_code == 200, result.text
    assert set(result.json()) >= {"state", "images", "error_msg", "progress"}
    assert wait_done(client, account.token, task_id)["state"] == "done"


def test_generation_form_example(client: TestClient) -> None:
    response = client.get("/api/v1b/get_generation_form")
    assert response.status_code == 200
    body = json.loads(response.text)
    assert body["code"] == 0 and body["msg"] == ""
    fields = {item["name"]: item for item in body["info"]}
    for name in ("model_name", "prompt", "neg_prompt", "n_images", "scale", "select_seed",
                 "resolution", "init_img", "controlnet_model"):
        assert name in fields
    assert fields["model_name"]["default"] == "Artist_V0.1.3"
    assert "Artist_V0.1.3" in fields["model_name"]["choices"]
    assert fields["n_images"] == {"default": 2, "description": "number of images", "max": 8,
                                  "min": 1, "name": "n_images", "type": "int"}
    assert fields["resolution"]["choices"]["1:1"] == ["512x512", "640x640", "768x768",
                                                      "1024x1024"]
    assert fields["controlnet_model"]["choices"] == ["", "canny"]
