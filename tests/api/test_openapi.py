"""/openapi.json describes the server: each route's response fields, the error statuses it
really sends with its family's error envelope (never FastAPI's unused 422), and the limits
the request models enforce.  Real answers are checked against the documented schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from ronghe.images.job import ImageJob
from ronghe.settings import Settings
from ronghe.tasks.training import TrainJob
from tests.conftest import PASSWORD, Account, DemoModel, make_settings
from tests.image_support import wait_done

MIAOHUA = "/api/v1b"
FUSION = "/v1/fusion/chat-with-image"
# route -> the fields its 200 answer documents (and always sends).
FIELDS: dict[tuple[str, str], set[str]] = {
    # Flat, as the vendor documents them, and under info, as a later client reads them.
    ("post", f"{MIAOHUA}/task_submit"): {"task_id", "code", "msg", "info"},
    ("post", f"{MIAOHUA}/task_result"): {"task_id", "state", "images", "error_msg", "progress",
                                         "seed", "prompt", "task_type", "prompt_added",
                                         "select_seed", "wait_time", "preview", "code", "msg",
                                         "info", "sampler_name", "scheduler"},
    ("post", f"{MIAOHUA}/task_results"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/task_cancel"): {"code", "info", "msg"},
    ("post", f"{MIAOHUA}/train_progress"): {
        "code", "msg", "task_id", "create_time", "description", "main_body", "model_name",
        "model_id", "base_model", "state", "training_progress", "trigger_word", "nsfw",
        "error_msg", "step", "total_steps", "loss", "loss_history", "eta_seconds", "phase",
        "resumed_from_step", "preview_images", "samples", "captions", "select_seed",
        "wait_time"},
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
    ("post", f"{MIAOHUA}/png_info"): {"code", "info", "msg"},
    ("post", "/nlp/v1/chat/completions"): {"code", "msg", "data"},
    ("post", "/v1/chat/completions"): {"id", "object", "created", "model", "choices", "usage"},
    ("get", "/v1/models"): {"object", "data"},
    ("get", "/healthz"): {"code", "status", "version"},
    ("get", "/readyz"): {"code", "ready", "checks"},
    ("post", f"{MIAOHUA}/task_list"): {"code", "info", "msg"},
    ("post", FUSION): {"code", "msg", "data"},
    **{("post", f"{MIAOHUA}/{path}"): {"code", "info", "msg"} for path in (
        "setup", "signup", "me", "change_password", "api_keys/create", "api_keys/list",
        "api_keys/revoke", "admin/users", "admin/user_add", "admin/user_disable",
        "admin/user_enable", "admin/user_reset_password", "admin/user_set_admin",
        "admin/queue")},
    ("get", f"{MIAOHUA}/setup"): {"code", "info", "msg"},
}
USER = {"id", "email", "is_admin", "is_active", "create_time"}
KEY = {"id", "name", "prefix", "create_time", "last_used_time"}
PAGE = {"items", "page", "per_page", "total", "has_next", "has_prev"}
LISTED = {"task_id", "kind", "state", "progress", "error_msg", "create_time", "finish_time"}
# Nested fields worth pinning: (route, path of property names) -> fields there.
NESTED: list[tuple[tuple[str, str], tuple[str, ...], set[str]]] = [
    (("post", f"{MIAOHUA}/task_result"), ("images", "[]"),
     {"large", "middle", "small", "save_index", "seed", "width", "height", "share",
      "shareable"}),
    (("post", f"{MIAOHUA}/task_submit"), ("info",), {"task_id"}),
    (("post", f"{MIAOHUA}/png_info"), ("info",), {"text", "parameters", "settings"}),
    (("post", f"{MIAOHUA}/task_result"), ("info",),
     {"task_id", "state", "images", "error_msg", "progress", "select_seed"}),
    (("post", f"{MIAOHUA}/task_cancel"), ("info",), {"task_id", "state", "cancel_requested"}),
    (("post", f"{MIAOHUA}/train_submit"), ("info",), {"task_id"}),
    (("post", f"{MIAOHUA}/dataset_all"), ("items", "[]"),
     {"id", "name", "description", "demo_picture", "create_time", "update_time", "images",
      "captions", "images_num"}),
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
    (("get", f"{MIAOHUA}/setup"), ("info",), {"needs_setup", "allow_signup"}),
    (("post", f"{MIAOHUA}/setup"), ("info",), USER),
    (("post", f"{MIAOHUA}/signup"), ("info",), USER),
    (("post", f"{MIAOHUA}/me"), ("info",), USER | {"token_expires_at"}),
    (("post", f"{MIAOHUA}/change_password"), ("info",), {"changed", "revoked_tokens"}),
    (("post", f"{MIAOHUA}/api_keys/create"), ("info",), KEY | {"key"}),
    (("post", f"{MIAOHUA}/api_keys/list"), ("info", "items", "[]"), KEY),
    (("post", f"{MIAOHUA}/api_keys/revoke"), ("info",), {"id", "revoked"}),
    (("post", f"{MIAOHUA}/admin/users"), ("info",), PAGE),
    (("post", f"{MIAOHUA}/admin/users"), ("info", "items", "[]"), USER),
    (("post", f"{MIAOHUA}/admin/user_set_admin"), ("info",), USER),
    (("post", f"{MIAOHUA}/admin/queue"), ("info",), PAGE),
    (("post", f"{MIAOHUA}/task_list"), ("info",), PAGE),
    (("post", FUSION), ("data",), {"id", "choices", "usage", "status", "task_id"}),
    (("post", FUSION), ("data", "choices", "[]"),
     {"index", "content", "message", "role", "finish_reason"}),
    (("post", FUSION), ("data", "usage"),
     {"prompt_tokens", "completion_tokens", "total_tokens", "picture"}),
]
# The items of a union, by schema name -> their fields (exactly: each is always sent whole).
UNION_ITEMS = {
    "QueuedImage": {"task_id", "kind", "state", "progress", "user_id", "email", "create_time",
                    "start_time", "queue", "model", "prompt"},
    "QueuedTraining": {"task_id", "kind", "state", "progress", "user_id", "email",
                       "create_time", "start_time", "queue", "model", "model_name"},
    "ListedImageTask": LISTED | {"images", "seed", "prompt", "task_type", "model", "params"},
    "ListedTrainTask": LISTED | {"model_name", "model_id", "base_model", "trigger_word",
                                 "main_body", "step", "total_steps"},
    "ListedTask": LISTED,
    "SubmittedParams": {"model_name", "prompt", "neg_prompt", "n_images", "scale",
                        "select_seed", "output_size", "ddim_steps", "strength", "init_img",
                        "add_prompt", "lora_configs", "cn_configs", "versionid",
                        "outpaint_config", "sampler_name", "scheduler", "enable_hr",
                        "hr_scale", "hr_upscaler", "hr_second_pass_steps",
                        "hr_denoising_strength"},
    "ListedUpscaleTask": LISTED | {"images", "task_type", "upscaler", "scale", "source_img",
                                   "source_size"},
}


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1,
                         allow_signup=True)


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


def test_listings_and_fusion_document_each_item_shape(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for name, fields in UNION_ITEMS.items():
        assert set(schemas[name]["properties"]) == fields, name
        assert set(schemas[name]["required"]) == fields, name
    # Training tasks and any other kind are items of the same lists, documented as such.
    for route, names in (((f"{MIAOHUA}/task_list"),
                          {"ListedImageTask", "ListedUpscaleTask", "ListedTrainTask",
                           "ListedTask"}),
                         ((f"{MIAOHUA}/admin/queue"),
                          {"QueuedImage", "QueuedTraining", "QueuedDownload"})):
        items = walk(doc, ok_schema(doc, ("post", route)), ("info", "items"))["items"]
        assert {ref["$ref"].rsplit("/", 1)[-1] for ref in items["anyOf"]} == names, route
    # task_id is sent only with a drawing: documented, not required.
    data = walk(doc, ok_schema(doc, ("post", FUSION)), ("data",))
    assert set(data["required"]) == {"id", "choices", "usage", "status"}
    # The stream is documented beside the JSON answer, as on the chat routes.
    assert "text/event-stream" in doc["paths"][FUSION]["post"]["responses"]["200"]["content"]


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
        ("post", f"{MIAOHUA}/task_list"): ({"400", "401", "413"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/setup"): ({"400", "409", "413"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/signup"): ({"400", "403", "409", "413", "429"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/me"): ({"400", "401", "413"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/change_password"): ({"400", "401", "413", "429"},
                                                 "MiaohuaError"),
        ("post", f"{MIAOHUA}/api_keys/create"): ({"400", "401", "409", "413"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/api_keys/revoke"): ({"400", "401", "404", "413"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/admin/users"): ({"400", "401", "403", "413"}, "MiaohuaError"),
        ("post", f"{MIAOHUA}/admin/user_disable"): ({"400", "401", "403", "404", "413"},
                                                    "MiaohuaError"),
        ("post", f"{MIAOHUA}/admin/queue"): ({"400", "401", "403", "413"}, "MiaohuaError"),
        ("post", FUSION): ({"400", "401", "403", "413", "429", "502", "503", "504"},
                           "ChatError"),
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
    # A missing task has no seed/prompt/task_type keys; select_seed (null) is in every item
    # of the later editions' table.
    assert missing == {"task_id": "nope", "state": "not_found", "error_msg": "task not found",
                       "progress": 0.0, "images": [], "select_seed": None}
    cancelled = client.post(f"{MIAOHUA}/task_cancel",
                            json={**auth, "task_id": submitted["task_id"]}).json()
    check(doc, ("post", f"{MIAOHUA}/task_cancel"), cancelled)
    revoked = client.post(f"{MIAOHUA}/revoke_token", json=auth).json()
    check(doc, ("post", f"{MIAOHUA}/revoke_token"), revoked)
    assert revoked == {"code": 0, "info": {"revoked": True}, "msg": ""}


def test_first_run_setup_answers_match_their_schemas(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    state = client.get(f"{MIAOHUA}/setup").json()
    check(doc, ("get", f"{MIAOHUA}/setup"), state)
    assert state["info"] == {"needs_setup": True, "allow_signup": True}
    created = client.post(f"{MIAOHUA}/setup",
                          json={"email": "root@example.com", "password": PASSWORD}).json()
    check(doc, ("post", f"{MIAOHUA}/setup"), created)
    assert created["info"]["is_admin"] is True
    signed_up = client.post(f"{MIAOHUA}/signup",
                            json={"email": "new@example.com", "password": PASSWORD}).json()
    check(doc, ("post", f"{MIAOHUA}/signup"), signed_up)
    assert signed_up["info"]["is_admin"] is False


def post(client: TestClient, path: str, **body: Any) -> Any:
    response = client.post(f"{MIAOHUA}/{path}", json=body)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def test_account_admin_listing_and_fusion_answers_match_their_schemas(
        client: TestClient, account: Account) -> None:
    doc = client.get("/openapi.json").json()
    services = client.app.state.services  # type: ignore[attr-defined]
    services.auth.set_admin(account.email, True)
    token = account.token
    for path in ("me", "api_keys/list", "admin/users"):
        check(doc, ("post", f"{MIAOHUA}/{path}"), post(client, path, token=token))
    key = post(client, "api_keys/create", token=token, name="k")
    check(doc, ("post", f"{MIAOHUA}/api_keys/create"), key)
    listed = post(client, "api_keys/list", token=token)
    check(doc, ("post", f"{MIAOHUA}/api_keys/list"), listed)
    assert "key" not in listed["info"]["items"][0]
    check(doc, ("post", f"{MIAOHUA}/api_keys/revoke"),
          post(client, "api_keys/revoke", token=token, id=key["info"]["id"]))
    added = post(client, "admin/user_add", token=token, email="b@example.com",
                 password=PASSWORD)
    check(doc, ("post", f"{MIAOHUA}/admin/user_add"), added)
    for path, extra in (("admin/user_disable", {}), ("admin/user_enable", {}),
                        ("admin/user_reset_password", {"password": PASSWORD + "x"}),
                        ("admin/user_set_admin", {"is_admin": True})):
        answer = post(client, path, token=token, user_id=added["info"]["id"], **extra)
        check(doc, ("post", f"{MIAOHUA}/{path}"), answer)

    # Tasks on a queue no worker serves stay pending: one of each kind for the listings.
    image_params = ImageJob(model="ronghe-demo", model_name="ronghe-demo", prompt="p",
                            neg_prompt="", n_images=1, scale=7.0, seed=1, width=64,
                            height=64, steps=4, strength=0.6,
                            task_type="txt2img").to_params()
    train_params = TrainJob(lora_id=1, name="lora1", base_model="ronghe-demo", family="demo",
                            trigger_word="tw", main_body="Style", file_ids=[],
                            preset={"steps": 40}, seed=1).to_params()
    for kind, params in (("image", image_params), ("train", train_params)):
        services.tasks.create(account.user_id, kind, "nobody-serves-this", params)
    queue = post(client, "admin/queue", token=token)
    check(doc, ("post", f"{MIAOHUA}/admin/queue"), queue)
    assert {"prompt", "model_name"} <= {k for item in queue["info"]["items"] for k in item}

    headers = {"Authorization": account.api_key}
    drawn = client.post(FUSION, headers=headers, json={
        "messages": [{"role": "user", "content": "Please draw a red circle"}],
        "mh_output_size": "64x64", "mh_ddim_steps": 1}).json()
    check(doc, ("post", FUSION), drawn)
    assert drawn["code"] == 200 and drawn["data"]["usage"]["picture"] is True
    chatted = client.post(FUSION, headers=headers, json={
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
        "max_new_tokens": 4}).json()
    check(doc, ("post", FUSION), chatted)
    # No drawing, no task_id key at all (not a null), as before.
    assert "task_id" not in chatted["data"] and chatted["data"]["usage"]["picture"] is False

    tasks = post(client, "task_list", token=token, kind="all")
    check(doc, ("post", f"{MIAOHUA}/task_list"), tasks)
    kinds = {item["kind"] for item in tasks["info"]["items"]}
    assert kinds == {"image", "train"}
    done = next(i for i in tasks["info"]["items"] if i["task_id"] == drawn["data"]["task_id"])
    assert done["state"] == "done" and len(done["images"]) == 1
    assert "share" not in done["images"][0]  # task_list's images, as before

    changed = post(client, "change_password", token=token, old_password=PASSWORD,
                   new_password=PASSWORD + "y")
    check(doc, ("post", f"{MIAOHUA}/change_password"), changed)
    assert changed["info"]["changed"] is True
