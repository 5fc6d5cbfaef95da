"""The later editions' task_submit and result fields: versionid, select_seed, a float scale,
the ``info.*`` shapes, and the vendor FAQ's prompt and upload limits."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.images.conftest import SUBMIT, submit
from tests.conftest import Account, DemoModel
from tests.image_support import add_lora, wait_done


def params_of(client: TestClient, task_id: str) -> dict[str, Any]:
    services = client.app.state.services  # type: ignore[attr-defined]
    return dict(services.tasks.get(task_id).params)


def refused(client: TestClient, account: Account, **fields: Any) -> str:
    response = client.post(SUBMIT, json={"token": account.token, "prompt": "x", **fields})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and body["info"] is None
    return str(body["msg"])


def test_versionid_names_a_base_model_or_a_lora_and_wins_over_model_name(
        client: TestClient, account: Account, other_account: Account,
        demo_model: DemoModel) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    listed = client.post("/api/v1b/models/base", json={"token": account.token}).json()
    base = listed["info"]["models"][0]["versionid"]
    task = submit(client, account, versionid=base, model_name="no-such-model")
    assert params_of(client, task["task_id"])["model"] == "ronghe-demo"
    assert params_of(client, submit(client, account, versionid="Artist_V0.1.3")["task_id"])[
        "model"] == "ronghe-demo"  # an alias is a base model's name too

    lora_id = add_lora(services, account.user_id, "stripes", demo_model.path, "ronghe-demo")
    for versionid in (lora_id, str(lora_id), "stripes"):
        p = params_of(client, submit(client, account, versionid=versionid,
                                     model_name="ronghe-demo")["task_id"])
        assert p["model"] == "ronghe-demo" and [x["id"] for x in p["loras"]] == [lora_id]
    # Someone else's LoRA only once it is public, as in lora_configs.
    assert refused(client, other_account, versionid=lora_id).startswith(
        f"versionid: unknown model {lora_id}")
    services.loras.set_public(lora_id, True)
    assert params_of(client, submit(client, other_account, versionid=lora_id)["task_id"])[
        "loras"][0]["id"] == lora_id
    # The listing shows versionid as sent, and the LoRA it implied is not a lora_configs unit.
    items = client.post("/api/v1b/task_list", json={"token": account.token}).json()["info"]
    newest = items["items"][0]["params"]
    assert newest["versionid"] == "stripes" and newest["lora_configs"] == []

    assert refused(client, account, versionid="nope") == (
        "versionid: unknown model 'nope'; use a base model's versionid from "
        "/api/v1b/models/base (ronghe-demo, Artist_V0.1.3) or a LoRA's from "
        "/api/v1b/models/lora or /models/private")
    assert refused(client, account, versionid=0).startswith("versionid: must be a model id")
    assert refused(client, account, versionid=True).startswith("versionid: must be a model id")
    services.loras.create(account.user_id, "half-done", "ronghe-demo")
    assert refused(client, account, versionid="half-done") == (
        "versionid: model 'half-done' is not ready (state training)")
    # model_name alone still works, and neither means the default model.
    assert params_of(client, submit(client, account, model_name="ronghe-demo")["task_id"])[
        "model"] == "ronghe-demo"
    assert params_of(client, submit(client, account, versionid="")["task_id"])["model"] == \
        "ronghe-demo"


def test_results_carry_select_seed_and_both_shapes(client: TestClient,
                                                   account: Account) -> None:
    submitted = submit(client, account, n_images=2, select_seed=5)
    task_id = submitted["task_id"]
    # Flat, as the documents show it, and under info, as one real client reads it.
    assert submitted == {"task_id": task_id, "code": 0, "msg": "", "info": {"task_id": task_id}}
    done = wait_done(client, account.token, task_id)
    assert done["code"] == 0 and done["msg"] == "" and done["select_seed"] == 5
    info = done["info"]
    assert info["images"] == done["images"] and len(info["images"]) == 2
    assert (info["task_id"], info["state"], info["select_seed"], info["error_msg"],
            info["progress"]) == (task_id, "done", 5, "", 1.0)

    batch = client.post("/api/v1b/task_results",
                        json={"token": account.token, "task_ids": [task_id, "missing"]})
    found, missing = batch.json()["info"]
    assert found["select_seed"] == 5 and "info" not in found
    assert [(im["task_id"], im["task_type"], im["seed"]) for im in found["images"]] == \
        [(task_id, "txt2img", 5), (task_id, "txt2img", 6)]
    assert all(im["small"].startswith("http://testserver/") for im in found["images"])
    assert missing["state"] == "not_found" and missing["select_seed"] is None


def test_scale_is_a_float_from_1_to_20(client: TestClient, account: Account) -> None:
    # The later turbo example: 5 steps at scale 1.2.
    task = submit(client, account, scale=1.2, ddim_steps=5)
    assert params_of(client, task["task_id"])["scale"] == 1.2
    assert wait_done(client, account.token, task["task_id"])["state"] == "done"
    assert params_of(client, submit(client, account, scale="19.5")["task_id"])["scale"] == 19.5
    assert refused(client, account, scale=0.99) == "scale: must be a number 1-20 (got 0.99)"
    assert refused(client, account, scale=20.01) == "scale: must be a number 1-20 (got 20.01)"
    # The form says so, and lists the later editions' fields.
    form = client.get("/api/v1b/get_generation_form").json()["info"]
    fields = {f["name"]: f for f in form}
    assert (fields["scale"]["type"], fields["scale"]["min"], fields["scale"]["max"]) == \
        ("float", 1, 20)
    assert fields["versionid"]["choices"] == ["ronghe-demo"]
    assert fields["outpaint_config"]["choices"] == {
        "outpaint_ratio": ["1.25", "1.5", "2"],
        "align_position": ["topleft", "topmiddle", "topright", "middleleft", "middle",
                           "middleright", "bottomleft", "bottommiddle", "bottomright"]}


def test_the_vendor_faq_limits_fit_within_ronghes(client: TestClient, account: Account) -> None:
    # Prompts: the FAQ allows 1000 characters; Ronghe 2000.
    submit(client, account, prompt="x" * 1000, neg_prompt="y" * 1000)
    assert refused(client, account, prompt="x" * 2001).startswith(
        "prompt: must be at most 2000 characters (got 2001)")
    # Uploads: .png .jpg .jpeg .jfif .pjpeg .pjp .webp, up to 5 MB, 256-6144 px a side.
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (1200, 1400, 3), dtype=np.uint8))
    files = []
    for name, fmt, kind in [("a.jfif", "JPEG", "image/jpeg"), ("b.pjpeg", "JPEG", "image/pjpeg"),
                            ("c.pjp", "JPEG", "image/jpeg"), ("d.webp", "WEBP", "image/webp")]:
        data = io.BytesIO()
        Image.new("RGB", (256, 256), "teal").save(data, fmt)
        files.append(("init_img", (name, data.getvalue(), kind)))
    big = io.BytesIO()
    noise.save(big, "PNG")  # ~5 MB of incompressible pixels
    assert 4.5e6 < len(big.getvalue()) <= 5 * 1024 * 1024
    files.append(("init_img", ("e.png", big.getvalue(), "image/png")))
    tall = io.BytesIO()
    Image.new("RGB", (256, 6144), "navy").save(tall, "PNG")
    files.append(("init_img", ("f.jpg", tall.getvalue(), "image/png")))
    answer = client.post("/api/v1b/upload_imgs", files=files,
                         headers={"Authorization": f"Bearer {account.token}"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["info"]) == 6


def test_later_edition_error_cases_answer_their_http_status(client: TestClient,
                                                            account: Account) -> None:
    """docs/api.md, "Error codes of the later editions": code stays the HTTP status."""
    from datetime import timedelta

    from sqlalchemy import update

    from ronghe.db.base import utcnow
    from ronghe.db.models import LoginToken

    def answer(token: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        response = client.post(SUBMIT, json={"token": token, "prompt": "x", **fields})
        return response.status_code, response.json()

    status, body = answer(account.token, n_images=9)  # the vendor's 129 illegal parameter
    assert status == body["code"] == 400 and body["msg"].startswith("n_images:")
    status, body = answer("rht_not-a-token")  # the vendor's 413 illegal token
    assert status == body["code"] == 401 and "invalid or revoked" in body["msg"]
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as s:  # the vendor's 411 token expired
        s.execute(update(LoginToken).where(LoginToken.user_id == account.user_id)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    status, body = answer(account.token)
    assert status == body["code"] == 401 and body["msg"].startswith("token has expired")


def test_the_later_editions_default_versionid_names_the_default_model(
        client: TestClient, account: Account) -> None:
    """Later clients send ``versionid: "sgl_artist_v0.3.5_0925"`` when their user picked no
    model (later-editions.md): it draws with the default model, as Artist_V0.1.3 does."""
    task = submit(client, account, versionid="sgl_artist_v0.3.5_0925")
    assert params_of(client, task["task_id"])["model"] == "ronghe-demo"
    assert wait_done(client, account.token, task["task_id"])["state"] == "done"
    listed = [client.post("/api/v1b/cn/list", json={"token": account.token,
                                                    "versionid": versionid})
              for versionid in ("sgl_artist_v0.3.5_0925", "")]
    assert [r.status_code for r in listed] == [200, 200], listed[0].text
    assert listed[0].json() == listed[1].json() and listed[0].json()["info"]
    # It is no choice of its own: the form and the error messages do not list it.
    form = client.get("/api/v1b/get_generation_form").json()["info"]
    assert "sgl_artist_v0.3.5_0925" not in str(form)
