"""get_generation_form and the model / ControlNet listings, built from the live registry."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import Account


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def add_lora(client: TestClient, account: Account, name: str, **values: object) -> int:
    services = client.app.state.services  # type: ignore[attr-defined]
    info = services.loras.create(account.user_id, name, "ronghe-demo",
                                 description=f"{name} style", trigger_word=name)
    services.loras.update(info.id, state="ready", weights_key=f"u{account.user_id}/x",
                          **values)
    return info.id


def test_form_lists_models_sizes_controlnets_and_your_trained_models(
        client: TestClient, account: Account, other_account: Account) -> None:
    add_lora(client, account, "purple-style")
    add_lora(client, other_account, "bobs-style")
    anonymous = client.get("/api/v1b/get_generation_form").json()
    fields = {f["name"]: f for f in anonymous["info"]}
    assert fields["model_name"]["choices"] == ["ronghe-demo", "Artist_V0.1.3"]
    demo = fields["model_name"]["models"][0]
    assert demo["family"] == "demo" and demo["native_resolution"] == 32
    assert demo["controlnets"] == ["canny"] and demo["default"] is True
    assert demo["resolution"]["3:2"][-1] == "1536x1024"
    for name in ("strength", "ddim_steps", "add_prompt", "cn_configs", "lora_configs"):
        assert name in fields
    assert fields["ddim_steps"]["default"] == 20  # the demo model's own recommendation

    mine = client.get("/api/v1b/get_generation_form",
                      headers={"Authorization": f"Bearer {account.token}"}).json()
    model_field = mine["info"][0]
    assert model_field["choices"] == ["ronghe-demo", "Artist_V0.1.3", "purple-style"]
    assert model_field["trained"][0]["base_model"] == "ronghe-demo"
    via_query = client.get(f"/api/v1b/get_generation_form?token={account.token}").json()
    assert "purple-style" in via_query["info"][0]["choices"]


def test_model_listings_page_and_filter(client: TestClient, account: Account,
                                        other_account: Account) -> None:
    for i in range(3):
        add_lora(client, account, f"mine-{i}")
    shared = add_lora(client, other_account, "shared-watercolour", public=True)
    services = client.app.state.services  # type: ignore[attr-defined]
    picture = services.files.save(other_account.user_id, jpeg_bytes(), "image/jpeg", "sample")
    services.loras.update(shared, demo_file_id=picture.id)
    add_lora(client, other_account, "bobs-private")

    base = client.post("/api/v1b/models/base", json={"token": account.token}).json()
    assert base["code"] == 0
    model = base["info"]["models"][0]
    assert {"author", "base_model", "demo_picture", "description", "is_opensource",
            "model_id", "model_name", "tag", "versionid"} <= set(model)
    assert model["model_name"] == "ronghe-demo" and model["tag"] == "demo"
    nothing = client.post("/api/v1b/models/base", json={"query": "sdxl"}).json()
    assert nothing["info"]["models"] == [] and nothing["info"]["has_next"] is False

    page1 = client.post("/api/v1b/models/private",
                        json={"token": account.token, "page": 1, "per_page": 2}).json()["info"]
    assert [m["model_name"] for m in page1["models"]] == ["mine-2", "mine-1"]
    assert page1["has_next"] is True and page1["page"] == 1
    page2 = client.post("/api/v1b/models/private",
                        json={"token": account.token, "page": 2, "per_page": 2}).json()["info"]
    assert [m["model_name"] for m in page2["models"]] == ["mine-0"] and not page2["has_next"]
    found = client.post("/api/v1b/models/private",
                        json={"token": account.token, "query": "MINE-1"}).json()["info"]
    assert [m["model_name"] for m in found["models"]] == ["mine-1"]
    assert client.post("/api/v1b/models/private", json={}).status_code == 401

    public = client.post("/api/v1b/models/lora", json={"token": account.token}).json()
    assert [m["model_name"] for m in public["info"]["models"]] == ["shared-watercolour"]
    listed = public["info"]["models"][0]
    assert listed["is_opensource"] is True and listed["author"] == f"user {other_account.user_id}"
    # Its sample picture is a signed URL that works for anyone holding it.
    fetched = client.get(listed["demo_picture"])
    assert fetched.status_code == 200 and fetched.content == jpeg_bytes()
    assert client.get(listed["demo_picture"].replace("Signature=", "Signature=x")
                      ).status_code in (403, 404)
    assert page1["models"][0]["demo_picture"] == ""  # trained without a sample
    found = client.post("/api/v1b/models/lora", json={"query": "WATER"}).json()["info"]
    assert found["models"][0]["model_id"] == shared
    assert client.post("/api/v1b/models/lora", json={"query": "bobs"}).json()["info"][
        "models"] == []
    bad = client.post("/api/v1b/models/base", json={"per_page": 101})
    assert bad.status_code == 400 and bad.json()["msg"].startswith("per_page: must be")


def test_controlnet_listings(client: TestClient) -> None:
    for path in ("/api/v1b/cn/artist", "/api/v1b/cn/opensource"):
        body = client.post(path, json={}).json()
        assert body["code"] == 0 and body["msg"] == ""
        (canny,) = body["info"]
        assert canny["name"] == "canny" and canny["models"] == ["ronghe-demo"]
        assert {"local_name", "desc", "demo_picture", "demo_preview", "demo_result"} <= set(canny)
