"""Inputs at the edges, in every API: NaN and Infinity, ids past 64 bits, a missing body.

Each is a 400 in the family's envelope naming the field, never a 200 with gibberish or a
500 from the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ronghe.errors import NotFound
from ronghe.settings import Settings
from tests.conftest import Account, DemoModel, make_settings

HELLO = [{"role": "user", "content": "Hi"}]
VENDOR = "/nlp/v1/chat/completions"
OPENAI = "/v1/chat/completions"
TOO_BIG = 2**63


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1)


def raw(client: TestClient, path: str, text: str, auth: str) -> httpx.Response:
    """Python's json writes NaN/Infinity literals; send them as a client would."""
    return client.post(path, content=text.encode(),
                       headers={"Content-Type": "application/json", "Authorization": auth})


@pytest.mark.parametrize(("path", "field", "literal"), [
    (VENDOR, "temperature", "NaN"),
    (VENDOR, "top_p", "NaN"),
    (VENDOR, "temperature", "Infinity"),
    (VENDOR, "repetition_penalty", "Infinity"),
    (VENDOR, "repetition_penalty", "NaN"),
    (OPENAI, "temperature", "NaN"),
    (OPENAI, "top_p", "NaN"),
    (OPENAI, "frequency_penalty", "-Infinity"),
    (OPENAI, "presence_penalty", "NaN"),
    (OPENAI, "repetition_penalty", "NaN"),
])
def test_chat_refuses_non_finite_numbers(client: TestClient, account: Account, path: str,
                                         field: str, literal: str) -> None:
    text = f'{{"messages": [{{"role": "user", "content": "Hi"}}], "{field}": {literal}}}'
    r = raw(client, path, text, account.api_key)
    assert r.status_code == 400, r.text
    body = r.json()
    if path == OPENAI:
        assert body["error"]["param"] == field and body["error"]["code"] == 400
        assert body["error"]["message"].startswith(f"{field}: "), body
    else:
        assert body["code"] == 400 and body["data"] is None
        assert body["msg"].startswith(f"{field}: ") and "finite" in body["msg"], body


def test_openai_logit_bias_refuses_nan(client: TestClient, account: Account) -> None:
    text = '{"messages": [{"role": "user", "content": "Hi"}], "logit_bias": {"42": NaN}}'
    body = raw(client, OPENAI, text, account.api_key).json()
    assert body["error"]["code"] == 400 and body["error"]["param"] == "logit_bias.42"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("task_submit", '{"scale": NaN}', "scale"),
    ("task_submit", '{"strength": Infinity}', "strength"),
    ("task_submit", '{"strength": "NaN"}', "strength"),
    ("task_submit", '{"cn_configs": [{"cn": "canny", "weight": NaN}]}', "cn_configs[0].weight"),
    ("task_submit", '{"lora_configs": [{"versionid": 1, "merge_weight": -Infinity}]}',
     "lora_configs[0].merge_weight"),
    ("task_result", '{"task_id": "x", "sensitive_limit_value": NaN}',
     "sensitive_limit_value"),
    ("train_submit", '{"name": "x", "dataset": [1], "learning_rate": NaN}', "learning_rate"),
    ("train_submit", '{"name": "x", "dataset": [1], "learning_rate": Infinity}',
     "learning_rate"),
])
def test_image_and_training_refuse_non_finite_numbers(client: TestClient, account: Account,
                                                      path: str, body: str,
                                                      field: str) -> None:
    r = raw(client, f"/api/v1b/{path}", body, f"Bearer {account.token}")
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["code"] == 400 and answer["info"] is None
    assert answer["msg"].startswith(f"{field}: "), answer["msg"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("train_submit", {"name": "x", "dataset": [TOO_BIG]}, "dataset[0]"),
    ("train_submit", {"name": "x", "dataset": TOO_BIG}, "dataset[0]"),
    ("train_submit", {"name": "x", "dataset": ["9" * 30]}, "dataset[0]"),
    ("train_submit", {"name": "x", "dataset": [1, 2**64]}, "dataset[1]"),
    ("dataset/delete_images", {"dataset": TOO_BIG, "images": ["x"]}, "dataset"),
    ("dataset/add_images", {"dataset": "9" * 30, "images": ["x"]}, "dataset"),
    ("task_submit", {"lora_configs": [{"versionid": TOO_BIG}]}, "lora_configs[0].versionid"),
    ("task_submit", {"lora_configs": [{"versionid": "9" * 30}]},
     "lora_configs[0].versionid"),
])
def test_ids_past_64_bits_are_a_400_naming_the_field(client: TestClient, account: Account,
                                                     path: str, body: dict[str, Any],
                                                     field: str) -> None:
    r = client.post(f"/api/v1b/{path}", json={"token": account.token, **body})
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["code"] == 400 and answer["msg"].startswith(f"{field}: "), answer["msg"]


def test_services_treat_ids_past_64_bits_as_missing(client: TestClient,
                                                    account: Account) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        services.loras.get(TOO_BIG)
    with pytest.raises(NotFound):
        services.datasets.get(TOO_BIG, account.user_id)


@pytest.mark.parametrize(("path", "content", "expected"), [
    ("/api/v1b/task_result", b"", "request body is empty; send a JSON object with task_id"),
    ("/api/v1b/task_results", b"", "request body is empty; send a JSON object with task_ids"),
    ("/api/v1b/train_submit", b"",
     "request body is empty; send a JSON object with name, dataset"),
    ("/api/v1b/models/base", b"", "request body is empty; send a JSON object (at least {})"),
    ("/api/v1b/task_result", b"null",
     "request body must be a JSON object with task_id (got null)"),
    ("/api/v1b/task_cancel", b"[1, 2]",
     "request body must be a JSON object with task_id (got [1, 2])"),
])
def test_a_missing_body_names_the_required_fields(client: TestClient, account: Account,
                                                  path: str, content: bytes,
                                                  expected: str) -> None:
    r = client.post(path, content=content, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {account.token}"})
    assert r.status_code == 400, r.text
    assert r.json() == {"code": 400, "info": None, "msg": expected}


def test_a_missing_chat_body_names_messages(client: TestClient, account: Account) -> None:
    r = client.post(VENDOR, content=b"", headers={"Authorization": account.api_key})
    assert r.status_code == 400
    assert r.json() == {"code": 400, "data": None,
                        "msg": "request body is empty; send a JSON object with messages"}
    r = client.post(OPENAI, content=b"", headers={"Authorization": account.api_key})
    assert r.json()["error"]["param"] == "messages"
