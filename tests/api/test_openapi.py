"""/openapi.json describes the server: each route's response fields, the error statuses it
really sends with its family's error envelope (never FastAPI's unused 422), and the limits
the request models enforce.  Real answers are checked against the documented schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from ronghe.settings import Settings
from tests.conftest import Account, DemoModel, make_settings
from tests.image_support import wait_done

MIAOHUA = "/api/v1b"
# route -> the fields its 200 answer documents (and always sends).
FIELDS: dict[tuple[str, str], set[str]] = {
    ("post", f"{MIAOHUA}/task_submit"): {"task_id"},
    ("post", f"{MIAOHUA}/task_result"): {"task_id", "state", "images", "error_msg", "progress",
                                         "seed", "prompt", "task_type", "prompt_added",
                                         "select_seed", "wait_time", "preview"},
    ("post", f"{MIAOHUA}/task_results"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/task_cancel"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/train_progress"): {
        "code", "msg", "task_id", "create_time", "description", "main_body", "model_name",
        "model_id", "base_model", "state", "training_progress", "trigger_word", "nsfw",
        "error_msg", "step", "total_steps", "loss", "eta_seconds", "phase",
        "resumed_from_step", "preview_images", "samples", "select_seed", "wait_time"},
    ("post", f"{MIAOHUA}/train_submit"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/train_cancel"): {"code", "info", "msg"},
    ("get", f"{MIAOHUA}/get_train_form"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/dataset_all"): {"code", "msg", "items", "page", "per_page", "total",
                                         "has_next", "has_prev", "totalPages"},
    ("post", f"{MIAOHUA}/dataset"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/dataset/add_images"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/dataset/delete_images"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/models/base"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/models/lora"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/models/private"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/cn/artist"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/cn/opensource"): {"code", "info", "msg"},
    ("get", f"{MIAOHUA}/get_generation_form"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/upload_imgs"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/upload_img"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/get_token"): {"token", "expires_at"},
    ("post", f"{MIAOHUA}/revoke_token"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/files"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/file_url"): {"code", "info", "msg"},
    ("post", "/nlp/v1/chat/completions"): {"code", "msg", "data"},
    ("post", "/v1/chat/completions"): {"id", "object", "created", "model", "choices", "usage"},
    ("get", "/v1/models"): {"object", "data"},
    ("get", "/healthz"): {"code", "status", "version"},
    ("get", "/readyz"): {"code", "ready", "checks"},
}
# Nested fields worth pinning: (route, path of property names) -> fields there.
NESTED: list[tuple[tuple[str, str], tuple[str, ...], set[str]]] = [
    (("post", f"{MIAOHUA}/task_result"), ("images", "[]"),
     {"large", "middle", "small", "save_index", "seed", "width", "height", "share",
      "shareable"}),
    (("post", f"{MIAOHUA}/task_cancel"), ("info",), {"task_id", "state", "cancel_requested"}),
    (("post", f"{MIAOHUA}/train_submit"), ("info",), {"task_id"}),
    (("post", f"{MIAOHUA}/dataset_all"), ("items", "[]"),
     {"id", "name", "description", "demo_picture", "create_time", "update_time", "images",
      "images_num"}),
    (("post", f"{MIAOHUA}/models/private"), ("info",),
     {"has_next", "page", "per_page", "total", "models"}),
    (("post", f"{MIAOHUA}/models/private"), ("info", "models", "[]"),
     {"author", "base_model", "demo_picture", "description", "is_opensource", "model_id",
      "model_name", "tag", "versionid", "trigger_word"}),
    (("post", f"{MIAOHUA}/models/base"), ("info", "models", "[]"),
     {"model_id", "model_name", "versionid", "aliases", "controlnets"}),
    (("get", f"{MIAOHUA}/get_generation_form"), ("info", "[]"),
     {"name", "type", "description", "default"}),
    (("post", "/nlp/v1/chat/completions"), ("data",), {"id", "choices", "usage", "status"}),
    (("post", "/nlp/v1/chat/completions"), ("data", "choices", "[]"),
     {"index", "message", "content", "role", "finish_reason"}),
    (("post", "/v1/chat/completions"), ("choices", "[]", "message"), {"role", "content"}),
]


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1)


@pytest.fixture
def doc(app: Any) -> dict[str, Any]:
    # No lifespan needed: the document comes from the routes alone.
    return TestClient(app).get("/openapi.json").json()


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def walk(doc: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for step in path:
        schema = resolve(doc, schema)
        if "anyOf" in schema:  # T | None
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
            schema = resolve(doc, schema)
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return resolve(doc, schema)


def ok_schema(doc: dict[str, Any], route: tuple[str, str]) -> dict[str, Any]:
    method, path = route
    return doc["paths"][path][method]["responses"]["200"]["content"]["application/json"][
        "schema"]


def test_every_route_documents_its_answer_fields(doc: dict[str, Any]) -> None:
    for route, fields in FIELDS.items():
        schema = resolve(doc, ok_schema(doc, route))
        assert set(schema["properties"]) == fields, route
        # Always sent, so required: a client generator gets non-optional fields.
        assert set(schema["required"]) == fields, route
    for route, path, fields in NESTED:
        schema = walk(doc, ok_schema(doc, route), path)
        assert fields <= set(schema["properties"]), (route, path)


def test_no_422_and_real_error_statuses_with_the_family_envelope(doc: dict[str, Any]) -> None:
    text = str(doc)
    assert "422" not in doc["paths"]["/api/v1b/task_submit"]["post"]["responses"]
    assert "HTTPValidationError" not in text and "'422'" not in text
    expected = {
        ("post", f"{MIAOHUA}/task_submit"): ({"400", "401", "413", "429", "503"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/task_result"): ({"400", "401", "404", "413"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/train_submit"): ({"400", "401", "409", "413", "503"},
                                              "MiaohuaError"),
        ("post", f"{MIAOHUA}/get_token"): ({"400", "401", "429"}, "MiaohuaError"),
        ("post", "/nlp/v1/chat/completions"): ({"400", "401", "413", "503"}, "ChatError"),
        ("post", "/v1/chat/completions"): ({"400", "401", "413", "503"}, "OpenAIError"),
        ("get", "/files/{file_id}"): ({"403", "404"}, "PlainError"),
    }
    for (method, path), (statuses, envelope) in expected.items():
        responses = doc["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, sorted(responses))
        for status in statuses:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith(f"/{envelope}"), (path, status, ref)
    schemas = doc["components"]["schemas"]
    assert set(schemas["MiaohuaError"]["properties"]) == {"code", "info", "msg"}
    assert set(schemas["ChatError"]["properties"]) == {"code", "msg", "data"}
    assert set(resolve(doc, schemas["OpenAIError"]["properties"]["error"])["properties"]) == {
        "message", "type", "param", "code"}
    # Every error any operation documents uses an error envelope.
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if s != "200"}
            if path == "/readyz":
                continue  # its 503 is the readiness report itself
            for status, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("Error"), (method, path, status)


def prop(doc: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    return doc["components"]["schemas"][model]["properties"][field]


def test_enforced_limits_are_schema_constraints(doc: dict[str, Any]) -> None:
    n_images = prop(doc, "TaskSubmitRequest", "n_images")
    assert (n_images["minimum"], n_images["maximum"]) == (1, 8)
    assert (prop(doc, "TaskSubmitRequest", "ddim_steps")["maximum"]) == 150
    assert prop(doc, "TaskSubmitRequest", "scale")["minimum"] == 1
    assert prop(doc, "TaskSubmitRequest", "prompt")["maxLength"] == 2000
    assert prop(doc, "TaskSubmitRequest", "lora_configs")["maxItems"] == 5
    assert prop(doc, "CnConfig", "weight")["maximum"] == 2
    assert prop(doc, "TaskResultsRequest", "task_ids")["maxItems"] == 50
    per_page = prop(doc, "ModelListRequest", "per_page")
    assert (per_page["minimum"], per_page["maximum"]) == (1, 100)
    dataset_page = resolve(doc, prop(doc, "DatasetPage", "per_page")["anyOf"][0])
    assert dataset_page["maximum"] == 100
    ids = prop(doc, "TrainSubmit", "dataset")
    assert (ids["items"]["minimum"], ids["items"]["maximum"]) == (1, 2**63 - 1)
    assert prop(doc, "DatasetImages", "dataset")["maximum"] == 2**63 - 1
    temperature = prop(doc, "VendorChatRequest", "temperature")
    assert (temperature["exclusiveMinimum"], temperature["maximum"]) == (0, 2)
    assert prop(doc, "VendorChatRequest", "repetition_penalty")["exclusiveMinimum"] == 0
    assert prop(doc, "VendorChatRequest", "max_new_tokens")["minimum"] == 1
    openai_temperature = prop(doc, "ChatCompletionRequest", "temperature")
    assert (openai_temperature["minimum"], openai_temperature["maximum"]) == (0, 2)
    assert prop(doc, "ChatCompletionRequest", "frequency_penalty")["minimum"] == -2


def check(doc: dict[str, Any], route: tuple[str, str], body: Any) -> None:
    """The answer validates against the documented schema (refs resolved in the document)."""
    schema = {**ok_schema(doc, route), "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_real_answers_match_their_documented_schemas(client: TestClient,
                                                     account: Account) -> None:
    doc = client.get("/openapi.json").json()
    auth = {"token": account.token}
    form = client.get(f"{MIAOHUA}/get_generation_form",
                      headers={"Authorization": f"Bearer {account.token}"}).json()
    check(doc, ("get", f"{MIAOHUA}/get_generation_form"), form)
    # Form fields carry only the keys that apply to them, as before.
    fields = {f["name"]: f for f in form["info"]}
    assert set(fields["prompt"]) == {"name", "type", "description", "default"}
    assert {"min", "max"} <= set(fields["n_images"]) and "choices" not in fields["n_images"]
    for path in ("models/base", "models/lora", "models/private", "cn/artist", "cn/opensource",
                 "files", "dataset_all"):
        answer = client.post(f"{MIAOHUA}/{path}", json=auth)
        assert answer.status_code == 200, (path, answer.text)
        check(doc, ("post", f"{MIAOHUA}/{path}"), answer.json())
    check(doc, ("get", f"{MIAOHUA}/get_train_form"),
          client.get(f"{MIAOHUA}/get_train_form").json())
    check(doc, ("get", "/healthz"), client.get("/healthz").json())
    check(doc, ("get", "/readyz"), client.get("/readyz").json())

    submitted = client.post(f"{MIAOHUA}/task_submit", json={
        **auth, "prompt": "a red circle", "n_images": 1, "output_size": "64x64",
        "ddim_steps": 1}).json()
    check(doc, ("post", f"{MIAOHUA}/task_submit"), submitted)
    done = wait_done(client, account.token, submitted["task_id"])
    assert done["state"] == "done" and len(done["images"]) == 1
    check(doc, ("post", f"{MIAOHUA}/task_result"), done)
    batch = client.post(f"{MIAOHUA}/task_results",
                        json={**auth, "task_ids": [submitted["task_id"], "nope"]}).json()
    check(doc, ("post", f"{MIAOHUA}/task_results"), batch)
    found, missing = batch["info"]
    assert found["images"][0]["task_id"] == submitted["task_id"]
    # A missing task has no seed/prompt/task_type keys at all, as before.
    assert missing == {"task_id": "nope", "state": "not_found", "error_msg": "task not found",
                       "progress": 0.0, "images": []}
    cancelled = client.post(f"{MIAOHUA}/task_cancel",
                            json={**auth, "task_id": submitted["task_id"]}).json()
    check(doc, ("post", f"{MIAOHUA}/task_cancel"), cancelled)
    revoked = client.post(f"{MIAOHUA}/revoke_token", json=auth).json()
    check(doc, ("post", f"{MIAOHUA}/revoke_token"), revoked)
    assert revoked == {"code": 0, "info": {"revoked": True}, "msg": ""}
