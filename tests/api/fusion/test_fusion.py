"""Fusion through HTTP: drawing (both stream modes, zh and en), classify-only, chat, refusal,
follow-up turns, validation and auth."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ronghe.api.fusion.protocol import DRAWING_REQUEST
from ronghe.app import create_app
from tests.api.fusion.conftest import ask, events
from tests.conftest import Account, DemoModel, make_account, make_settings
from tests.image_support import fetch_image


def tasks_of(client: TestClient, account: Account) -> list:  # type: ignore[type-arg]
    return client.app.state.services.tasks.list(account.user_id)  # type: ignore[attr-defined]


def test_english_drawing_is_an_ordinary_task_and_answers_its_url(
        client: TestClient, account: Account) -> None:
    response = ask(client, account, "Please draw a red circle on a blue background")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 200 and body["msg"] == "ok" and body["data"]["status"] == 0
    choice = body["data"]["choices"][0]
    assert choice["content"] == choice["message"] and choice["finish_reason"] == "stop"
    assert body["data"]["usage"]["picture"] is True
    assert body["data"]["usage"]["prompt_tokens"] > 0
    image = fetch_image(client, choice["content"])
    assert image.size == (64, 64)
    [task] = tasks_of(client, account)
    assert task.id == body["data"]["task_id"] and task.state.value == "done"
    assert task.params["prompt"] == "a red circle on a blue background"
    # The same task the image API shows.
    result = client.post("/api/v1b/task_result",
                         json={"token": account.token, "task_id": task.id}).json()
    assert result["state"] == "done" and len(result["images"]) == 1


def test_chinese_drawing_streams_heartbeats_then_the_url_without_done(
        client: TestClient, account: Account) -> None:
    response = ask(client, account, "帮我画一个蓝色背景上的红色圆圈", stream=True,
                   stream_done=False, path="/fusion/v1/chat-with-image",
                   auth=f"Bearer {account.api_key}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks, comments, done = events(response)
    assert not done
    assert comments and comments[0].startswith(": drawing task ")
    assert all(c["code"] == 0 and c["msg"] == "OK" for c in chunks)
    assert [c["data"]["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert all(c["data"]["choices"][0]["finish_reason"] == "" for c in chunks[:-1])
    assert chunks[-1]["data"]["choices"][0]["delta"] == ""
    assert chunks[-1]["data"]["usage"]["picture"] is True
    url = "".join(c["data"]["choices"][0]["delta"] for c in chunks)
    assert fetch_image(client, url).size == (64, 64)
    [task] = tasks_of(client, account)
    assert task.params["prompt"] == "一个蓝色背景上的红色圆圈"


def test_classify_only_answers_the_literal_and_draws_nothing(
        client: TestClient, account: Account) -> None:
    body = ask(client, account, "画一只猫", output_img=False).json()
    assert body["data"]["choices"][0]["content"] == DRAWING_REQUEST
    response = ask(client, account, "draw a dog", output_img=False, stream=True,
                   path="/v1/fusion-new/chat-with-image")
    chunks, _, done = events(response)
    assert done  # the documented default
    assert "".join(c["data"]["choices"][0]["delta"] for c in chunks) == DRAWING_REQUEST
    assert tasks_of(client, account) == []


def test_a_question_about_pictures_is_chatted_in_both_stream_modes(
        client: TestClient, account: Account) -> None:
    body = ask(client, account, "what is a picture element?").json()
    assert body["code"] == 200 and body["data"]["usage"]["picture"] is False
    assert body["data"]["usage"]["completion_tokens"] >= 1
    text = body["data"]["choices"][0]["content"]
    assert text and not text.startswith("http") and text != DRAWING_REQUEST
    chunks, _, done = events(ask(client, account, "图片格式有哪些？", stream=True))
    assert done and chunks[-1]["data"]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["data"]["usage"]["picture"] is False
    assert chunks[-1]["data"]["usage"]["completion_tokens"] >= 1
    assert tasks_of(client, account) == []


def test_an_unknown_model_is_refused_as_content_with_code_0(
        client: TestClient, account: Account) -> None:
    body = ask(client, account, "draw a cat", mh_model_name="NoSuchModel").json()
    assert body["code"] == 0
    assert body["data"]["choices"][0]["content"] == "不支持的模型: NoSuchModel"
    assert body["data"]["usage"]["picture"] is True
    chunks, _, _ = events(ask(client, account, "画一只猫", model_name="Nope", stream=True))
    assert "".join(c["data"]["choices"][0]["delta"] for c in chunks) == "不支持的模型: Nope"
    assert tasks_of(client, account) == []


def test_a_follow_up_turn_draws_again_with_the_change(
        client: TestClient, account: Account) -> None:
    first = ask(client, account, "draw a red circle on a black background").json()
    url = first["data"]["choices"][0]["content"]
    messages = [{"role": "user", "content": "draw a red circle on a black background"},
                {"role": "assistant", "content": url},
                {"role": "user", "content": "now make it blue"}]
    second = ask(client, account, messages).json()
    assert second["data"]["usage"]["picture"] is True
    assert second["data"]["choices"][0]["content"] != url
    fetch_image(client, second["data"]["choices"][0]["content"])
    prompts = sorted(t.params["prompt"] for t in tasks_of(client, account))
    assert prompts == ["a red circle on a black background",
                       "a red circle on a black background, blue"]


def test_image_fields_are_validated_as_task_submit_and_named_as_sent(
        client: TestClient, account: Account) -> None:
    for fields, start in [({"mh_scale": 30}, "mh_scale: must be a number 1-20"),
                          ({"scale": 0}, "scale: must be a number 1-20"),
                          ({"mh_select_seed": -5}, "mh_select_seed: must be an integer"),
                          ({"mh_add_prompt": "maybe"}, "mh_add_prompt: must be true or false"),
                          ({"temperature": 3}, "temperature: must be in (0, 2]")]:
        response = ask(client, account, "draw a cat", **fields)
        assert response.status_code == 400, fields
        body = response.json()
        assert body["code"] == 400 and body["data"] is None
        assert body["msg"].startswith(start), body
    response = ask(client, account, "draw a cat", mh_output_size="10x10")
    assert response.status_code == 400 and response.json()["msg"].startswith("mh_output_size")
    assert tasks_of(client, account) == []


def test_auth_key_token_and_mh_key_of_another_user(
        client: TestClient, account: Account, other_account: Account) -> None:
    response = ask(client, account, "hi", auth="")
    assert response.status_code == 401 and response.json()["data"] is None
    # A get_token token works as the chat credential, as on the chat endpoints.
    assert ask(client, account, "hi", auth=f"Bearer {account.token}").status_code == 200
    response = ask(client, account, "draw a cat", mh_key=other_account.token)
    assert response.status_code == 403 and response.json()["msg"].startswith("mh_key")
    response = ask(client, account, "draw a cat", mh_key="rh_not-a-token")
    assert response.status_code == 401 and response.json()["msg"].startswith("mh_key")


def test_mh_add_prompt_enriches_the_drawing_prompt_as_add_prompt_does(
        client: TestClient, account: Account) -> None:
    body = ask(client, account, "draw a red circle on a blue background",
               mh_add_prompt=True).json()
    assert body["code"] == 200 and body["data"]["usage"]["picture"] is True, body
    [task] = tasks_of(client, account)
    assert task.params["add_prompt"] is True
    result = client.post("/api/v1b/task_result",
                         json={"token": account.token, "task_id": task.id}).json()
    original = "a red circle on a blue background"
    assert result["prompt"].startswith(original + ", ")
    assert len(result["prompt"]) > len(original) + 3


def test_without_a_chat_model_drawing_still_works_and_chat_says_why(
        tmp_path: Path, demo_model: DemoModel) -> None:
    settings = make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                             chat_models=[], cpu_threads=1)
    app = create_app(settings)
    with TestClient(app) as client:
        account = make_account(app)
        body = ask(client, account, "画一只猫").json()
        assert body["code"] == 200 and body["data"]["usage"]["picture"] is True
        response = ask(client, account, "how are you?")
        assert response.status_code == 400 and response.json()["msg"].startswith("model:")
