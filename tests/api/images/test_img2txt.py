"""img2txt through HTTP: the caption of your own upload, errors in the envelope, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ronghe.settings import Settings
from tests.api.images.conftest import upload
from tests.conftest import Account, DemoModel, make_settings
from tests.image_support import drawn
from tools.demo_models.captioning.evaluate import parse

URL = "/api/v1b/img2txt"


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    # Three submits a minute: the fourth caption is refused like a fourth image task.
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1,
                         task_submit_rate_per_minute=3)


def test_caption_of_an_upload_names_what_it_shows(client: TestClient, account: Account) -> None:
    url = upload(client, account, drawn("yellow", "triangle", "blue", size=96, seed=2))
    response = client.post(URL, json={"token": account.token, "init_img": url})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0 and body["msg"] == "" and isinstance(body["info"], str)
    colour, shape, background = parse(body["info"])
    # The shipped demo captioner names colour, shape and background on 94 % of held-out
    # pictures (docs/demo-model.md).
    assert (colour, shape, background) == ("yellow", "triangle", "blue"), body
    # The bearer header works as on every later-edition call.
    again = client.post(URL, json={"init_img": url},
                        headers={"Authorization": f"Bearer {account.token}"})
    assert again.status_code == 200 and again.json()["info"] == body["info"]
    # It ran as a task of the user's, listed with the others.
    listed = client.post("/api/v1b/task_list", json={"token": account.token, "kind": "all"})
    assert listed.status_code == 200
    assert [t["kind"] for t in listed.json()["info"]["items"]].count("caption") == 2


def test_bad_and_foreign_urls_are_400_naming_init_img(client: TestClient, account: Account,
                                                      other_account: Account) -> None:
    theirs = upload(client, other_account, drawn("red", "circle", "blue"))
    for init_img in ("", "not a url", "http://example.com/x.png", theirs):
        response = client.post(URL, json={"token": account.token, "init_img": init_img})
        body = response.json()
        assert response.status_code == 400 and body["code"] == 400, (init_img, body)
        assert body["msg"].startswith("init_img"), body
    assert client.post(URL, json={"token": account.token, "init_img": 5}).status_code == 400
    assert client.post(URL, json={"init_img": theirs}).status_code == 401


def test_captions_count_against_the_submit_rate(client: TestClient, account: Account) -> None:
    url = upload(client, account, drawn("green", "square", "white"))
    codes = [client.post(URL, json={"token": account.token, "init_img": url}).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
