"""Training captions through HTTP: `<trigger> <class word>, <caption>`, the user's own
caption (a .txt beside the image, or `captions`) winning over the captioner's, each image
captioned once and cached; preview prompts; the captions in the listing and progress."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.training_support import (
    concept_images,
    encode,
    make_dataset,
    submit,
    upload,
    wait_training,
)
from tools.demo_models.captioning.evaluate import parse

UPLOAD = "/api/v1b/upload_imgs"


def _listing(client: TestClient, token: str) -> dict:
    response = client.post("/api/v1b/dataset_all", json={"token": token})
    assert response.status_code == 200, response.text
    return {row["id"]: row for row in response.json()["items"]}


def test_user_captions_win_and_the_rest_are_captioned_once(client: TestClient,
                                                           account: Account) -> None:
    images = concept_images(4, size=48, seed=3)
    files = [("init_img", ("a.png", encode(images[0]), "image/png")),
             ("init_img", ("a.txt", b"a violet blob, plumzq style", "text/plain")),
             ("init_img", ("b.png", encode(images[1]), "image/png"))]
    response = client.post(UPLOAD, files=files, data={"token": account.token})
    assert response.status_code == 200, response.text
    first = response.json()["info"]
    assert len(first) == 2  # the caption file is not an image of its own
    rest = upload(client, account.token, images[2:])
    urls = [*first, *rest]
    response = client.post("/api/v1b/dataset", json={
        "token": account.token, "name": "capt", "images": urls,
        "captions": ["", "", "a lilac star on a white background", ""]})
    assert response.status_code == 200, response.text
    dataset = response.json()["info"]["dataset_id"]
    listed = _listing(client, account.token)[dataset]
    assert listed["captions"] == ["a violet blob, plumzq style", None,
                                  "a lilac star on a white background", None]

    task_id = submit(client, account.token, [dataset], steps=2, trigger_word="plumzq",
                     sample_prompts=["a plumzq star on a red background", "plumzq style"])
    final = wait_training(client, account.token, task_id, timeout=300)
    assert final["state"] == "done", final
    captions = final["captions"]
    # A user caption that names the trigger is used as written; one that does not follows
    # the trigger and class word; the others are the captioner's, after them.
    assert captions[0] == "a violet blob, plumzq style"
    assert captions[2] == "plumzq style, a lilac star on a white background"
    for caption in (captions[1], captions[3]):
        head, description = caption.split(", ", 1)
        assert head == "plumzq style"
        colour, shape, background = parse(description)
        # Colour and background are what issue 17's LoRAs need; the shape is not asserted,
        # as the demo captioner reads one of these purple stars as a cross (it names the
        # shape on 93 % of held-out pictures of all nine shapes, docs/demo-model.md).
        assert (colour, background) == ("purple", "white") and shape is not None, caption
    assert {s["prompt"] for s in final["samples"]} == {"a plumzq star on a red background",
                                                       "plumzq style"}
    assert len(final["preview_images"]) == 2

    # The automatic captions are cached on the images: the listing shows them now.
    listed = _listing(client, account.token)[dataset]
    assert listed["captions"][1] == captions[1].split(", ", 1)[1]
    # add_images with captions replaces an image's caption.
    response = client.post("/api/v1b/dataset/add_images", json={
        "token": account.token, "dataset": dataset, "images": [urls[1]],
        "captions": ["my own words"]})
    assert response.status_code == 200, response.text
    assert _listing(client, account.token)[dataset]["captions"][1] == "my own words"


def test_caption_and_sample_prompt_limits_are_400s_naming_the_field(
        client: TestClient, account: Account) -> None:
    urls = upload(client, account.token, concept_images(2, size=32))
    bad_captions = [
        (["only one"], "captions"),
        (["x" * 1001, ""], "captions"),
    ]
    for captions, field in bad_captions:
        response = client.post("/api/v1b/dataset", json={
            "token": account.token, "name": "d", "images": urls, "captions": captions})
        assert response.status_code == 400, response.text
        assert response.json()["msg"].startswith(field), response.json()
    files = [("init_img", ("a.png", encode(concept_images(1)[0]), "image/png")),
             ("init_img", ("a.txt", b"\xff\xfe bad", "text/plain"))]
    response = client.post(UPLOAD, files=files, data={"token": account.token})
    assert response.status_code == 400 and "init_img[1]" in response.json()["msg"]

    dataset = make_dataset(client, account.token, urls)
    for prompts in (["a"] * 5, [""], ["x" * 501]):
        response = client.post("/api/v1b/train_submit", json={
            "token": account.token, "name": "n", "dataset": [dataset],
            "sample_prompts": prompts})
        assert response.status_code == 400, response.text
        assert "sample_prompts" in response.json()["msg"], response.json()
