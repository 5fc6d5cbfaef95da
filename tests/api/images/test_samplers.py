"""sampler_name and scheduler through HTTP: A1111's names on the demo model (an SD 1.x
pipeline) and on tiny flow-matching models (FLUX.1 schnell, SD 3.5, Z-Image)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.app import create_app
from ronghe.engines.diffusion.output import read_metadata
from tests.api.images.conftest import SUBMIT, submit, upload
from tests.conftest import PASSWORD, Account, DemoModel, make_account, make_settings
from tests.image_support import fetch_image, mean_diff, wait_done
from tools import family_models


def render(client: TestClient, account: Account, **fields: Any) -> tuple[dict[str, Any],
                                                                         Image.Image]:
    task = submit(client, account, select_seed=11, **fields)
    done = wait_done(client, account.token, task["task_id"])
    assert done["state"] == "done", done
    return done, fetch_image(client, done["images"][0]["large"])


def same(a: Image.Image, b: Image.Image) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def refused(client: TestClient, account: Account, **fields: Any) -> str:
    """The 400's message (it starts with the field, as every field error does)."""
    body = {"token": account.token, "prompt": "a red circle", "n_images": 1,
            "output_size": "64x64", **fields}
    response = client.post(SUBMIT, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 400
    return str(response.json()["msg"])


def test_a_named_sampler_changes_the_image_and_is_recorded(client: TestClient,
                                                           account: Account) -> None:
    own, own_image = render(client, account)
    # The demo's own scheduler is DDIM: task_result names it as A1111 does.
    assert (own["sampler_name"], own["scheduler"]) == ("DDIM", "Automatic")
    euler_a, euler_a_image = render(client, account, sampler_name="Euler a")
    assert (euler_a["sampler_name"], euler_a["scheduler"]) == ("Euler a", "Automatic")
    assert mean_diff(own_image, euler_a_image) > 1
    # "Automatic" is the sampler's own default schedule, as A1111 1.9+: Karras for DPM++ 2M.
    dpm, dpm_image = render(client, account, sampler_name="dpm++ 2m", scheduler="automatic")
    assert (dpm["sampler_name"], dpm["scheduler"]) == ("DPM++ 2M", "Karras")
    assert mean_diff(own_image, dpm_image) > 1
    meta = read_metadata(client.get(dpm["images"][0]["large"]).content)
    assert (meta["sampler_name"], meta["scheduler"]) == ("DPM++ 2M", "Karras")
    # task_list's params are what was asked, to send back as they are.
    listed = client.post("/api/v1b/task_list", json={"token": account.token}).json()
    params = {i["task_id"]: i["params"] for i in listed["info"]["items"]}
    assert params[dpm["task_id"]]["sampler_name"] == "DPM++ 2M"
    assert params[own["task_id"]]["sampler_name"] == ""


def test_an_unnamed_sampler_changes_nothing_even_after_a_named_one(client: TestClient,
                                                                   account: Account) -> None:
    _, before = render(client, account)
    _, heun = render(client, account, sampler_name="Heun", scheduler="Karras")
    _, after = render(client, account)
    assert same(before, after)  # the cached pipeline got its own scheduler back
    assert mean_diff(before, heun) > 1
    # Naming the model's own sampler is the model's own scheduler again.
    _, ddim = render(client, account, sampler_name="DDIM")
    assert same(before, ddim)


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M SDE", "DPM++ SDE", "DPM++ 3M SDE",
                                     "UniPC", "LMS", "DPM2", "DPM2 a", "LCM", "PLMS"])
def test_every_listed_sampler_runs_on_the_demo(client: TestClient, account: Account,
                                               sampler: str) -> None:
    done, image = render(client, account, sampler_name=sampler, ddim_steps=3)
    assert done["sampler_name"] == sampler and image.size == (64, 64)
    assert done["progress"] == 1.0


def test_old_style_names_and_schedules(client: TestClient, account: Account) -> None:
    done, _ = render(client, account, sampler_name="DPM++ 2M Karras", ddim_steps=3)
    assert (done["sampler_name"], done["scheduler"]) == ("DPM++ 2M", "Karras")
    done, _ = render(client, account, sampler_name="Euler", scheduler="SGM Uniform",
                     ddim_steps=3)
    assert (done["sampler_name"], done["scheduler"]) == ("Euler", "SGM Uniform")
    done, _ = render(client, account, sampler_name="Euler", scheduler="Exponential",
                     ddim_steps=3)
    assert done["scheduler"] == "Exponential"


def test_bad_samplers_are_a_400_naming_the_field(client: TestClient,
                                                 account: Account) -> None:
    msg = refused(client, account, sampler_name="Restart")
    assert msg.startswith("sampler_name: 'Restart' is not a sampler; model 'ronghe-demo' "
                          "takes Euler, Euler a, DPM++ 2M"), msg
    msg = refused(client, account, sampler_name="DDIM", scheduler="Karras")
    assert msg == "scheduler: DDIM takes Automatic, SGM Uniform (got 'Karras')", msg
    msg = refused(client, account, scheduler="Karras")
    assert msg.startswith("scheduler: 'Karras' needs a sampler_name"), msg
    msg = refused(client, account, sampler_name="Euler", scheduler="Polyexponential")
    assert msg.startswith("scheduler must be one of Automatic, Karras, Exponential, "
                          "SGM Uniform"), msg
    msg = refused(client, account, sampler_name="x" * 65)
    assert msg.startswith("sampler_name"), msg


def test_the_form_lists_each_models_samplers(client: TestClient) -> None:
    info = client.get("/api/v1b/get_generation_form").json()["info"]
    fields = {f["name"]: f for f in info}
    demo = fields["model_name"]["models"][0]
    names = [s["name"] for s in demo["samplers"]]
    assert names[:3] == ["Euler", "Euler a", "DPM++ 2M"] and "LCM" in names
    dpm = next(s for s in demo["samplers"] if s["name"] == "DPM++ 2M")
    assert dpm["automatic"] == "Karras" and "SGM Uniform" in dpm["schedules"]
    assert demo["weighted_prompts"] is True
    assert fields["sampler_name"]["default"] == ""
    assert "Euler a" in fields["sampler_name"]["choices"]
    assert fields["scheduler"]["choices"] == ["Automatic", "Karras", "Exponential", "SGM Uniform"]


# --- flow-matching families: tiny random-weight models in the models folder


FLOW_MODELS = {"flux-schnell": ("flux", "schnell"), "sd35": ("sd3", ""),
               "zimage": ("zimage", "")}


@pytest.fixture(scope="module")
def flow_client(tmp_path_factory: pytest.TempPathFactory,
                demo_model: DemoModel) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("flow")
    models = root / "models"
    for name, (family, variant) in FLOW_MODELS.items():
        family_models.build(family, "tiny", variant).save_pretrained(str(models / name))
    settings = make_settings(root / "data", image_models=[demo_model.spec()], cpu_threads=1,
                             models_dir=models, image_worker_process=False,
                             image_previews=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        services = c.app.state.services  # type: ignore[attr-defined]
        services.auth.add_user("root@example.com", PASSWORD, True)
        token = services.auth.issue_token("root@example.com").secret
        assert c.post("/api/v1b/admin/models/scan", json={"token": token}).status_code == 200
        yield c


@pytest.fixture(scope="module")
def bob(flow_client: TestClient) -> Account:
    return make_account(flow_client.app, "bob@example.com")


def flow_render(client: TestClient, account: Account, **fields: Any) -> tuple[dict[str, Any],
                                                                              Image.Image]:
    body = {"token": account.token, "prompt": "a red fox", "n_images": 1,
            "output_size": "128x128", "ddim_steps": 3, "select_seed": 5, **fields}
    response = client.post(SUBMIT, json=body)
    assert response.status_code == 200, response.text
    done = wait_done(client, account.token, response.json()["task_id"])
    assert done["state"] == "done", done
    return done, fetch_image(client, done["images"][0]["large"])


@pytest.mark.parametrize(("model", "sampler", "scheduler"), [
    ("flux-schnell", "UniPC", ""), ("sd35", "DPM++ 2M", ""), ("sd35", "Heun", ""),
    ("zimage", "Euler", "Karras")])
def test_flow_families_run_the_samplers_they_list(flow_client: TestClient, bob: Account,
                                                  model: str, sampler: str,
                                                  scheduler: str) -> None:
    own, own_image = flow_render(flow_client, bob, model_name=model)
    assert (own["sampler_name"], own["scheduler"]) == ("Euler", "Automatic")
    named, image = flow_render(flow_client, bob, model_name=model, sampler_name=sampler,
                               scheduler=scheduler)
    assert named["sampler_name"] == sampler
    assert named["scheduler"] == (scheduler or "Automatic")
    assert not same(own_image, image)
    _, again = flow_render(flow_client, bob, model_name=model)
    assert same(own_image, again)


def test_flow_families_refuse_what_does_not_apply(flow_client: TestClient,
                                                  bob: Account) -> None:
    msg = refused(flow_client, bob, model_name="flux-schnell", output_size="128x128",
                  sampler_name="DPM++ 2M SDE")
    assert msg == ("sampler_name: 'DPM++ 2M SDE' is not available for model 'flux-schnell' "
                   "(flux); model 'flux-schnell' takes Euler, UniPC"), msg
    msg = refused(flow_client, bob, model_name="zimage", output_size="128x128",
                  sampler_name="Euler", scheduler="SGM Uniform")
    assert msg.startswith("scheduler: Euler takes Automatic, Karras, Exponential"), msg
    # Their img2img pipelines noise the image with the flow-matching scheduler's own method.
    url = upload(flow_client, bob, Image.new("RGB", (128, 128), (200, 40, 40)))
    msg = refused(flow_client, bob, model_name="sd35", output_size="128x128", init_img=url,
                  sampler_name="DPM++ 2M")
    assert msg == ("sampler_name: DPM++ 2M draws from noise only on sd3 models; img2img, "
                   "inpainting, outpainting and hires fix take Euler, Heun"), msg
    done, _ = flow_render(flow_client, bob, model_name="sd35", init_img=url, sampler_name="Heun")
    assert done["sampler_name"] == "Heun"
    # T5/Qwen families read prompts as text: explicit weights and BREAK are refused there.
    msg = refused(flow_client, bob, model_name="zimage", output_size="128x128",
                  prompt="a (red:1.3) fox")
    assert msg.startswith("prompt: weights like (word:1.3) and BREAK apply to the CLIP "
                          "families"), msg
    flow_render(flow_client, bob, model_name="zimage", prompt="a fox (in the snow)")
    form = flow_client.get("/api/v1b/get_generation_form").json()["info"][0]
    models = {m["name"]: m for m in form["models"]}
    assert [s["name"] for s in models["flux-schnell"]["samplers"]] == ["Euler", "UniPC"]
    assert [s["name"] for s in models["zimage"]["samplers"]] == ["Euler"]
    assert models["sd35"]["weighted_prompts"] is False
