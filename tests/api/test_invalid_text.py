"""Issue 26: text that cannot be stored never gets in, and media types are checked.

A lone surrogate (``"\\ud800"`` in JSON) or a NUL in any string field of any API family is a
400 naming the field, before the endpoint runs: nothing is stored, nothing is echoed back
that cannot be encoded.  JSON sent as ``text/plain`` is JSON; a form or multipart body sent
to an endpoint that takes JSON is a 415 in the family's envelope.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from ronghe.jobs.models import Task
from ronghe.settings import Settings
from tests.conftest import Account, DemoModel, make_settings

SURROGATE = "\\ud800"  # as a JSON escape: what a client sends
LOW_SURROGATE = "\\udfff"
NUL = "\\u0000"
MIAOHUA = "/api/v1b"


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1,
                         chat_models=[])


def post_raw(client: TestClient, path: str, body: str, auth: str = "",
             ctype: str = "application/json") -> httpx.Response:
    headers = {"Content-Type": ctype}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    return client.post(path, content=body.encode(), headers=headers)


def with_bad(fields: dict[str, object], path: list[str | int], escape: str) -> str:
    """``fields`` as JSON with the string at ``path`` ending in the raw escape ``escape``."""
    marker = "@@BAD@@"
    node: object = fields
    for part in path[:-1]:
        node = node[part]  # type: ignore[index]
    node[path[-1]] = f"x{marker}"  # type: ignore[index]
    return json.dumps(fields).replace(marker, escape)


# (path, body, where the bad string goes, the field the message names, envelope family)
CASES = [
    (f"{MIAOHUA}/task_submit", {"token": "t", "prompt": ""}, ["prompt"], "prompt", "miaohua"),
    (f"{MIAOHUA}/task_submit", {"token": "t", "prompt": "a", "webhook": ""}, ["webhook"],
     "webhook", "miaohua"),
    (f"{MIAOHUA}/task_submit", {"token": "t", "prompt": "a", "negative_prompt": ""},
     ["negative_prompt"], "negative_prompt", "miaohua"),
    (f"{MIAOHUA}/get_token", {"email": "", "password": "x"}, ["email"], "email", "miaohua"),
    (f"{MIAOHUA}/dataset", {"token": "t", "name": ""}, ["name"], "name", "miaohua"),
    (f"{MIAOHUA}/dataset", {"token": "t", "name": "d", "description": ""}, ["description"],
     "description", "miaohua"),
    (f"{MIAOHUA}/dataset", {"token": "t", "name": "d", "captions": ["", "b"]},
     ["captions", 0], "captions[0]", "miaohua"),
    (f"{MIAOHUA}/train_submit", {"token": "t", "name": ""}, ["name"], "name", "miaohua"),
    (f"{MIAOHUA}/train_submit", {"token": "t", "name": "n", "trigger_word": ""},
     ["trigger_word"], "trigger_word", "miaohua"),
    (f"{MIAOHUA}/api_keys/create", {"token": "t", "name": ""}, ["name"], "name", "miaohua"),
    ("/nlp/v1/chat/completions", {"messages": [{"role": "user", "content": ""}]},
     ["messages", 0, "content"], "messages[0].content", "chat"),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": ""}]},
     ["messages", 0, "content"], "messages[0].content", "openai"),
    ("/v1/fusion/chat-with-image", {"messages": [{"role": "user", "content": ""}]},
     ["messages", 0, "content"], "messages[0].content", "chat"),
]


def message_of(body: dict[str, object], family: str) -> str:
    if family == "openai":
        return body["error"]["message"]  # type: ignore[index,return-value]
    return body["msg"]  # type: ignore[return-value]


@pytest.mark.parametrize("escape", [SURROGATE, LOW_SURROGATE, NUL],
                         ids=["surrogate", "low-surrogate", "nul"])
@pytest.mark.parametrize(("path", "fields", "where", "field", "family"), CASES,
                         ids=[f"{c[0].rsplit('/', 1)[-1]}-{c[3]}" for c in CASES])
def test_invalid_text_is_refused_naming_the_field(
        client: TestClient, account: Account, path: str, fields: dict[str, object],
        where: list[str | int], field: str, family: str, escape: str) -> None:
    body = with_bad(json.loads(json.dumps(fields).replace('"t"', f'"{account.token}"')),
                    where, escape)
    got = post_raw(client, path, body, account.api_key if family != "miaohua" else "")
    assert got.status_code == 400, got.text
    msg = message_of(got.json(), family)
    what = "a NUL character" if escape == NUL else "a lone surrogate"
    assert msg.startswith(f"{field}: contains {what}"), msg
    if family == "openai":
        assert got.json()["error"]["param"] == field


def test_raw_surrogate_bytes_and_keys_are_refused_and_pairs_pass(
        client: TestClient, account: Account) -> None:
    # Surrogates spelled as raw (not-quite-UTF-8) bytes, which json.loads accepts.
    body = b'{"token": "%s", "prompt": "a \xed\xa0\x80"}' % account.token.encode()
    got = client.post(f"{MIAOHUA}/task_submit", content=body,
                      headers={"Content-Type": "application/json"})
    assert got.status_code == 400 and got.json()["msg"].startswith("prompt: contains"), got.text
    bad_key = json.dumps({"token": account.token, "prompt": "a", "x@": 1}).replace(
        "@", SURROGATE)
    got = post_raw(client, f"{MIAOHUA}/task_submit", bad_key)
    assert got.status_code == 400 and "a key with a lone surrogate" in got.json()["msg"]
    # A valid pair (an emoji written as two escapes) is ordinary text.
    pair = json.dumps({"token": account.token, "prompt": "a cat @", "ddim_steps": 4}).replace(
        "@", "\\ud83d\\ude00")
    got = post_raw(client, f"{MIAOHUA}/task_submit", pair)
    assert got.status_code == 200, got.text


def test_a_nul_in_the_path_or_query_is_refused(client: TestClient, account: Account) -> None:
    got = client.get(f"{MIAOHUA}/files/abc%00def", params={"token": account.token})
    assert got.status_code == 400 and "path" in got.json()["msg"], got.text
    got = client.get(f"{MIAOHUA}/task_events?token=a%00b")
    assert got.status_code == 400, got.text
    assert got.json()["msg"] == "token: contains a NUL character (%00); send valid text"


def test_stored_bad_text_never_breaks_reads(client: TestClient, app, account: Account) -> None:  # type: ignore[no-untyped-def]
    """A prompt with a lone surrogate that an older version stored: the owner's listings
    and results, and the admins' queue, still answer (U+FFFD stands for it)."""
    services = app.state.services
    submitted = client.post(f"{MIAOHUA}/task_submit", json={
        "token": account.token, "prompt": "a red circle", "ddim_steps": 4})
    task_id = submitted.json()["task_id"]
    params = {**services.tasks.get(task_id).params, "prompt": "a red \ud800 circle"}
    with services.db.session() as s:
        s.execute(update(Task).where(Task.id == task_id).values(params=params))
    token = {"token": account.token}
    for path, body in [("task_list", token), ("task_result", {**token, "task_id": task_id}),
                       ("task_results", {**token, "task_ids": [task_id]})]:
        got = client.post(f"{MIAOHUA}/{path}", json=body)
        assert got.status_code == 200, (path, got.text)
        assert task_id in got.text
    services.auth.set_admin(account.email, True)
    queue = client.post(f"{MIAOHUA}/admin/queue", json=token)
    assert queue.status_code == 200 and task_id in queue.text, queue.text
    # The event stream: tests/api/images/test_recovery.py, on a real server.


def test_json_sent_as_text_plain_is_json(client: TestClient, account: Account) -> None:
    body = json.dumps({"token": account.token, "prompt": "a red circle", "ddim_steps": 4})
    got = post_raw(client, f"{MIAOHUA}/task_submit", body, ctype="text/plain;charset=UTF-8")
    assert got.status_code == 200 and got.json()["code"] == 0, got.text
    got = post_raw(client, f"{MIAOHUA}/task_submit", "not json", ctype="text/plain")
    assert got.status_code == 400 and "not valid JSON" in got.json()["msg"], got.text


@pytest.mark.parametrize(("path", "family"), [
    (f"{MIAOHUA}/task_submit", "miaohua"), (f"{MIAOHUA}/get_token", "miaohua"),
    ("/nlp/v1/chat/completions", "chat"), ("/v1/chat/completions", "openai"),
    ("/v1/fusion/chat-with-image", "chat"), (f"{MIAOHUA}/dataset", "miaohua"),
])
def test_forms_on_json_endpoints_get_415(client: TestClient, path: str, family: str) -> None:
    for kwargs in ({"data": {"prompt": "a red circle"}},
                   {"files": {"prompt": ("p.txt", b"a red circle")}},
                   {"content": b"<prompt/>", "headers": {"Content-Type": "application/xml"}}):
        got = client.post(path, **kwargs)  # type: ignore[arg-type]
        assert got.status_code == 415, (kwargs, got.text)
        body = got.json()
        assert "send the body as JSON" in message_of(body, family)
        assert (body["error"]["code"] if family == "openai" else body["code"]) == 415


def test_uploads_still_take_multipart(client: TestClient, account: Account) -> None:
    got = client.post(f"{MIAOHUA}/upload_imgs", data={"token": account.token},
                      files={"init_img": ("a.txt", b"not an image")})
    assert got.status_code == 400 and "init_img[0]" in got.json()["msg"], got.text
