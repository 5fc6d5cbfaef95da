"""dataset / dataset_all / dataset add_images, delete_images through HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.training_support import concept_images, make_dataset, upload

ALL = "/api/v1b/dataset_all"


def _ids(body: dict) -> list[int]:
    return [item["id"] for item in body["items"]]


def test_create_and_list_in_the_spec_shape(client: TestClient, account: Account) -> None:
    urls = upload(client, account.token, concept_images(3, size=32))
    dataset = make_dataset(client, account.token, urls + urls[:1], name="dataset1")
    body = client.post(ALL, json={"token": account.token}).json()
    assert {"items", "page", "per_page", "has_next", "has_prev", "totalPages"} <= set(body)
    assert (body["page"], body["per_page"], body["has_next"], body["has_prev"],
            body["totalPages"]) == (1, 20, False, False, 1)
    item = body["items"][0]
    assert item["id"] == dataset and item["name"] == "dataset1"
    assert item["description"] == "d" and item["images_num"] == 3  # the repeat counts once
    assert item["demo_picture"] == item["images"][0]
    assert len(item["create_time"]) == 19 and item["update_time"] >= item["create_time"]
    fetched = client.get(item["images"][2].replace("http://testserver", ""))
    assert fetched.status_code == 200


def test_pagination_by_query_and_body(client: TestClient, account: Account) -> None:
    urls = upload(client, account.token, concept_images(1, size=32))
    made = [make_dataset(client, account.token, urls, name=f"d{i}") for i in range(5)]
    auth = {"Authorization": f"Bearer {account.token}"}
    page2 = client.post(f"{ALL}?page=2&per_page=2", headers=auth).json()
    assert _ids(page2) == made[2:4]
    assert (page2["has_next"], page2["has_prev"], page2["totalPages"]) == (True, True, 3)
    last = client.post(ALL, json={"token": account.token, "page": 3, "per_page": 2}).json()
    assert _ids(last) == made[4:] and last["has_next"] is False
    beyond = client.post(f"{ALL}?page=9", json={"token": account.token}).json()
    assert beyond["items"] == [] and beyond["has_prev"] is True
    bad = client.post(f"{ALL}?per_page=500", headers=auth)
    assert bad.status_code == 400 and "per_page" in bad.json()["msg"]
    bad = client.post(ALL, json={"token": account.token, "page": 0})
    assert bad.status_code == 400 and "page" in bad.json()["msg"]


def test_validation_and_ownership(client: TestClient, account: Account,
                                  other_account: Account) -> None:
    mine = upload(client, account.token, concept_images(2, size=32))
    theirs = upload(client, other_account.token, concept_images(1, size=32))
    create = "/api/v1b/dataset"
    cases = [
        ({"name": "x", "images": []}, "images"),
        ({"name": "", "images": mine}, "name"),
        ({"name": "x" * 129, "images": mine}, "name"),
        ({"name": "x", "images": [mine[0], theirs[0]]}, "images[1]: no uploaded image of yours"),
        ({"name": "x", "images": ["http://evil.example/a.png"]},
         "images[0] must be an image URL returned by upload_imgs"),
        ({"name": "x"}, "images is required"),
    ]
    for fields, text in cases:
        response = client.post(create, json={"token": account.token, **fields})
        assert response.status_code == 400, (fields, response.text)
        assert text in response.json()["msg"], (fields, response.json())

    dataset = make_dataset(client, account.token, mine[:1])
    assert _ids(client.post(ALL, json={"token": other_account.token}).json()) == []
    for path in ("/api/v1b/dataset/add_images", "/api/v1b/dataset/delete_images"):
        response = client.post(path, json={"token": other_account.token, "dataset": dataset,
                                           "images": theirs})
        assert response.status_code == 404 and "no dataset" in response.json()["msg"]


def test_add_and_delete_images(client: TestClient, account: Account) -> None:
    urls = upload(client, account.token, concept_images(3, size=32))
    dataset = make_dataset(client, account.token, urls[:1])
    add = client.post("/api/v1b/dataset/add_images",
                      json={"token": account.token, "dataset": dataset, "images": urls})
    assert add.json() == {"code": 0, "info": "", "msg": "OK"}
    item = client.post(ALL, json={"token": account.token}).json()["items"][0]
    assert item["images_num"] == 3
    remove = client.post("/api/v1b/dataset/delete_images",
                         json={"token": account.token, "dataset": dataset, "images": urls[:2]})
    assert remove.status_code == 200
    item = client.post(ALL, json={"token": account.token}).json()["items"][0]
    assert item["images_num"] == 1 and item["images"][0].split("?")[0] == urls[2].split("?")[0]
    again = client.post("/api/v1b/dataset/delete_images",
                        json={"token": account.token, "dataset": dataset, "images": urls[:1]})
    assert again.status_code == 400 and "invalid image" in again.json()["msg"]
    missing = client.post("/api/v1b/dataset/add_images",
                          json={"token": account.token, "dataset": 999, "images": urls})
    assert missing.status_code == 404
