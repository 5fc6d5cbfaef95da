"""The AUTOMATIC1111-compatible API over real HTTP, in the shapes the tools that speak it
send (read from their public source) and reading what they read: SillyTavern's ping,
lists, set-model and generate; Open WebUI's options round trip and txt2img; LibreChat's
txt2img with credentials in the URL and ``JSON.parse(info)``; img2img with a mask; png-info,
progress and interrupt; auth and field refusals."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from ronghe.engines.diffusion.infotext import lora_hash
from tests.api.frontdoors.conftest import SECOND, Live, b64png, decoded, picture
from tests.conftest import PASSWORD, DemoModel
from tests.image_support import add_lora

V1 = "/sdapi/v1"


def get(live: Live, path: str, auth: dict[str, str], **kw: Any) -> Any:
    r = httpx.get(f"{live.url}{V1}/{path}", headers=auth, timeout=60, **kw)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def post(live: Live, path: str, auth: dict[str, str], body: Any, timeout: float = 300) -> Any:
    r = httpx.post(f"{live.url}{V1}/{path}", headers=auth, json=body, timeout=timeout)
    assert r.status_code == 200, (path, r.text)
    return r.json()


@pytest.fixture(scope="module")
def alice(live: Live) -> dict[str, str]:
    """HTTP Basic with the account's email and password, as SillyTavern's auth field."""
    return live.basic(live.alice.email, PASSWORD)


def test_sillytavern_connects_lists_sets_the_model_and_generates(live: Live,
                                                                 alice: dict[str, str]) -> None:
    # /api/sd/ping: GET options must be ok.
    get(live, "options", alice)
    # Its dropdowns read `name` of each entry (`title` of each model).
    names = {path: [x["name"] for x in get(live, path, alice)]
             for path in ("samplers", "schedulers", "upscalers", "latent-upscale-modes")}
    assert {"Euler a", "DPM++ 2M", "DDIM"} <= set(names["samplers"])
    assert names["schedulers"] == ["automatic", "karras", "exponential", "sgm_uniform"]
    assert names["upscalers"][:3] == ["None", "Lanczos", "Nearest"]
    assert "Latent" in names["latent-upscale-modes"]
    assert get(live, "sd-vae", alice) == []
    titles = [m["title"] for m in get(live, "sd-models", alice)]
    assert titles[:2] == ["ronghe-demo", SECOND]
    # /api/sd/set-model: POST options, then wait for progress 0 and no jobs.
    post(live, "options", alice, {"sd_model_checkpoint": SECOND})
    state = get(live, "progress", alice)
    assert state["progress"] == 0.0 and state["state"]["job_count"] == 0
    assert get(live, "options", alice)["sd_model_checkpoint"] == SECOND
    assert "forge_preset" not in get(live, "options", alice)  # not taken for Forge
    # /api/sd/generate: the whole request body, url and auth included.
    body = {
        "url": live.url, "auth": f"{live.alice.email}:{PASSWORD}",
        "prompt": "a red circle on a blue background", "negative_prompt": "blurry",
        "sampler_name": "DPM++ 2M", "scheduler": "karras",
        "steps": 8, "cfg_scale": 7, "width": 64, "height": 64, "restore_faces": False,
        "enable_hr": False, "hr_upscaler": "Latent", "hr_scale": 2.0,
        "hr_additional_modules": [], "denoising_strength": 0.7, "hr_second_pass_steps": 0,
        "seed": 1234, "override_settings": {"CLIP_stop_at_last_layers": 1},
        "override_settings_restore_afterwards": True, "save_images": True,
        "send_images": True, "do_not_save_grid": False, "do_not_save_samples": False,
    }
    data = post(live, "txt2img", alice, body)
    assert decoded(data["images"][0]).size == (64, 64)
    info = json.loads(data["info"])
    assert info["sd_model_name"] == SECOND  # the model alice chose, remembered
    assert info["seed"] == 1234 and info["all_seeds"] == [1234]
    assert info["sampler_name"] == "DPM++ 2M"  # as the image's infotext records it
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in info["infotexts"][0]
    # Bob has his own setting: the default model.
    bob = live.basic(live.bob.email, PASSWORD)
    assert get(live, "options", bob)["sd_model_checkpoint"] == "ronghe-demo"
    post(live, "options", alice, {"sd_model_checkpoint": "ronghe-demo"})


def test_open_webui_round_trips_options_and_reads_images_and_info(live: Live) -> None:
    # Open WebUI's AUTOMATIC1111_API_AUTH is "user:password": any user and an API key.
    auth = live.basic("openwebui", live.alice.api_key)
    models = [{"id": m["title"], "name": m["model_name"]}
              for m in get(live, "sd-models", auth)]
    options = get(live, "options", auth)
    options["sd_model_checkpoint"] = models[1]["id"]
    post(live, "options", auth, options)  # everything it got, posted back
    assert get(live, "options", auth)["sd_model_checkpoint"] == SECOND
    res = post(live, "txt2img", auth, {"prompt": "a red circle", "batch_size": 2,
                                       "width": 64, "height": 64, "steps": 4,
                                       "negative_prompt": "blurry"})
    assert len(res["images"]) == 2 and isinstance(res["info"], str)
    assert json.loads(res["info"])["sd_model_name"] == SECOND
    post(live, "options", auth, {"sd_model_checkpoint": ""})  # back to the default
    assert get(live, "options", auth)["sd_model_checkpoint"] == "ronghe-demo"


def test_librechat_txt2img_with_credentials_in_the_url(live: Live) -> None:
    # SD_WEBUI_URL=http://librechat:<api key>@host:port (axios sends it as Basic).
    host = live.url.removeprefix("http://")
    url = f"http://librechat:{live.alice.api_key}@{host}{V1}/txt2img"
    payload = {"prompt": "a red circle", "negative_prompt": "blurry", "cfg_scale": 4.5,
               "steps": 22, "width": 1024, "height": 1024}
    r = httpx.post(url, json=payload, timeout=300)
    assert r.status_code == 200, r.text
    data = r.json()
    image = data["images"][0]
    assert "," not in image  # it decodes image.split(',', 1)[0]
    info = json.loads(data["info"])  # JSON.parse(info)
    assert (info["width"], info["height"]) == (1024, 1024) and isinstance(info["seed"], int)
    assert info["infotexts"][0].split("\n").pop().startswith("Steps: 22")
    assert decoded(image).size == (1024, 1024)


def test_img2img_with_a_mask_keeps_the_black_area(live: Live, alice: dict[str, str]) -> None:
    source = picture()
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255  # white: paint
    body = {"init_images": ["data:image/png;base64," + b64png(source)],
            "mask": b64png(Image.fromarray(mask)), "prompt": "a green square",
            "denoising_strength": 1.0, "steps": 6, "width": 64, "height": 64, "seed": 5,
            "inpaint_full_res": False}
    data = post(live, "img2img", alice, body)
    edited = np.asarray(decoded(data["images"][0]).convert("RGB"), np.int16)
    original = np.asarray(source, np.int16)
    assert np.abs(edited[:, :20] - original[:, :20]).max() <= 2
    assert data["parameters"]["init_images"] is None  # not echoed back
    info = json.loads(data["info"])
    assert info["denoising_strength"] == 1.0
    # A1111's own defaults (only the masked area, at full size) work too.
    del body["inpaint_full_res"]
    again = post(live, "img2img", alice, body)
    edited = np.asarray(decoded(again["images"][0]).convert("RGB"), np.int16)
    assert np.abs(edited[:, :20] - original[:, :20]).max() <= 2


def test_png_info_reads_what_txt2img_wrote(live: Live, alice: dict[str, str]) -> None:
    data = post(live, "txt2img", alice, {"prompt": "a red circle", "negative_prompt": "dark",
                                         "steps": 3, "width": 64, "height": 64, "seed": 42})
    read = post(live, "png-info", alice, {"image": data["images"][0]})
    assert read["info"] == json.loads(data["info"])["infotexts"][0]
    params = read["parameters"]
    assert params["Prompt"] == "a red circle" and params["Negative prompt"] == "dark"
    assert params["Seed"] == "42" and params["Steps"] == "3"
    assert post(live, "png-info", alice, {"image": b64png(picture())})["info"] == ""


def test_progress_shows_the_running_task_and_interrupt_stops_it(live: Live) -> None:
    auth = live.basic("me", live.alice.api_key)
    answer: dict[str, Any] = {}

    def draw() -> None:
        answer["r"] = httpx.post(f"{live.url}{V1}/txt2img", headers=auth, timeout=300, json={
            "prompt": "a red circle", "steps": 150, "batch_size": 8, "width": 512,
            "height": 512})

    thread = threading.Thread(target=draw)
    thread.start()
    deadline = time.monotonic() + 120
    while True:
        state = get(live, "progress", auth)
        if state["progress"] > 0.1 and state["current_image"]:
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state["state"]["job_count"] >= 1 and state["state"]["sampling_steps"] > 0
    assert state["eta_relative"] > 0 and decoded(state["current_image"]).format == "PNG"
    assert get(live, "progress", auth, params={"skip_current_image": True})[
        "current_image"] is None
    post(live, "interrupt", auth, None)
    thread.join(timeout=120)
    r = answer["r"]
    assert r.status_code == 200, r.text
    assert r.json()["images"] == [] and json.loads(r.json()["info"])["interrupted"] is True
    assert get(live, "progress", auth)["state"]["job_count"] == 0


def test_auth_the_way_api_auth_works(live: Live) -> None:
    url = f"{live.url}{V1}/options"
    none = httpx.get(url, timeout=30)
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Basic")
    assert none.json()["error"] == "Unauthorized" and "Basic" in none.json()["detail"]
    wrong = httpx.get(url, headers=live.basic(live.alice.email, "not the password"),
                      timeout=30)
    assert wrong.status_code == 401
    for auth in ({"Authorization": f"Bearer {live.alice.api_key}"},
                 {"Authorization": f"Bearer {live.alice.token}"},
                 live.basic("anyone", live.alice.token)):
        assert httpx.get(url, headers=auth, timeout=30).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Basic !!!"}, timeout=30).status_code \
        == 401


def test_wrong_passwords_share_get_tokens_lockout(live: Live) -> None:
    services = live.app.state.services
    services.auth.add_user("carol@example.com", PASSWORD)
    url = f"{live.url}{V1}/sd-models"
    limit = services.settings.login_max_failures
    for _ in range(limit):
        r = httpx.get(url, headers=live.basic("carol@example.com", "wrong password"),
                      timeout=30)
        assert r.status_code == 401
    locked = httpx.get(url, headers=live.basic("carol@example.com", PASSWORD), timeout=30)
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    token = httpx.post(f"{live.url}/api/v1b/get_token",
                       json={"email": "carol@example.com", "password": PASSWORD}, timeout=30)
    assert token.status_code == 429  # the same (account, address) lockout
    # The lockout is per (account, address): alice is not affected.
    assert httpx.get(url, headers=live.basic(live.alice.email, PASSWORD),
                     timeout=30).status_code == 200


@pytest.mark.parametrize(("extra", "field"), [
    ({"restore_faces": True}, "restore_faces"),
    ({"tiling": True}, "tiling"),
    ({"styles": ["cinematic"]}, "styles"),
    ({"script_name": "x/y/z plot"}, "script_name"),
    ({"alwayson_scripts": {"ADetailer": {"args": [True]}}}, "alwayson_scripts"),
    ({"subseed_strength": 0.5}, "subseed_strength"),
    ({"override_settings": {"sd_vae": "vae-ft-mse.safetensors"}}, "override_settings.sd_vae"),
    ({"override_settings": {"sd_model_checkpoint": "nope"}},
     "override_settings.sd_model_checkpoint"),
    ({"sampler_name": "Nope"}, "sampler_name"),
    ({"scheduler": "normal"}, "scheduler"),
    ({"enable_hr": True, "hr_resize_x": 1024}, "hr_resize_x"),
    ({"enable_hr": True, "hr_sampler_name": "DDIM"}, "hr_sampler_name"),
    ({"enable_hr": True, "hr_upscaler": "4x-UltraSharp"}, "hr_upscaler"),
    ({"enable_hr": True, "hr_scale": 5}, "hr_scale"),
    ({"batch_size": 8, "n_iter": 4}, "n_iter"),
    ({"width": 4000}, "width"),
    ({"steps": 0}, "steps"),
])
def test_what_ronghe_does_not_have_is_refused_naming_the_field(
        live: Live, alice: dict[str, str], extra: dict[str, Any], field: str) -> None:
    body = {"prompt": "x", "width": 64, "height": 64, "steps": 2, **extra}
    r = httpx.post(f"{live.url}{V1}/txt2img", headers=alice, json=body, timeout=60)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["param"] == field and answer["detail"].startswith(field), answer
    assert answer["error"] == "BadRequest" and answer["errors"] == answer["detail"]


def test_off_values_are_accepted(live: Live, alice: dict[str, str]) -> None:
    body = {"prompt": "x", "width": 64, "height": 64, "steps": 2, "restore_faces": False,
            "tiling": False, "styles": [], "script_name": None, "script_args": [],
            "alwayson_scripts": {}, "s_churn": 0.0, "s_min_uncond": 0.0, "s_noise": 1.0,
            "s_tmax": None, "s_tmin": 0.0, "n_iter": 1, "subseed": -1, "subseed_strength": 0,
            "sampler_index": "Euler", "override_settings": {"sd_vae": "Automatic"},
            "send_images": False}
    data = post(live, "txt2img", alice, body)
    assert data["images"] == [] and len(json.loads(data["info"])["infotexts"]) == 1


def test_options_refuse_an_unknown_model(live: Live, alice: dict[str, str]) -> None:
    r = httpx.post(f"{live.url}{V1}/options", headers=alice, timeout=30,
                   json={"sd_model_checkpoint": "nope [0123456789]"})
    assert r.status_code == 400 and r.json()["param"] == "sd_model_checkpoint"


def test_hires_fix_and_old_style_sampler_names(live: Live, alice: dict[str, str]) -> None:
    # SillyTavern's hires fields, switched on; "DPM++ 2M Karras" as clients before A1111 1.9
    # name it.
    data = post(live, "txt2img", alice, {
        "prompt": "a red circle", "width": 64, "height": 64, "steps": 4, "enable_hr": True,
        "hr_upscaler": "Lanczos", "hr_scale": 2.0, "hr_second_pass_steps": 2,
        "denoising_strength": 0.5, "hr_additional_modules": [],
        "sampler_name": "DPM++ 2M Karras", "seed": 9})
    assert decoded(data["images"][0]).size == (128, 128)
    text = json.loads(data["info"])["infotexts"][0]
    assert "Hires upscaler: Lanczos" in text and "Schedule type: Karras" in text


def test_extras_lists_and_refresh(live: Live, alice: dict[str, str]) -> None:
    same = post(live, "extra-single-image", alice, {"image": b64png(picture()),
                                                    "upscaler_1": "None"})
    assert decoded(same["image"]).size == (64, 64)
    # An upscale task of the caller's, waited for.
    bigger = post(live, "extra-single-image", alice, {"image": b64png(picture()),
                                                      "upscaler_1": "Lanczos",
                                                      "upscaling_resize": 2})
    assert decoded(bigger["image"]).size == (128, 128)
    r = httpx.post(f"{live.url}{V1}/extra-single-image", headers=alice, timeout=30,
                   json={"image": b64png(picture()), "upscaler_1": "R-ESRGAN 4x+"})
    assert r.status_code == 400 and r.json()["param"] == "upscaler_1", r.text
    assert httpx.post(f"{live.url}{V1}/refresh-checkpoints", headers=alice,
                      timeout=60).status_code == 200
    assert isinstance(get(live, "loras", alice), list)
    assert get(live, "schedulers", alice)[0]["label"] == "Automatic"


def test_lora_tags_in_the_prompt_apply_the_callers_loras(live: Live, alice: dict[str, str],
                                                         demo_model: DemoModel) -> None:
    services = live.app.state.services
    lora_id = add_lora(services, live.alice.user_id, "stars", demo_model.path, "ronghe-demo")
    listed = get(live, "loras", alice)
    assert [(x["name"], x["alias"]) for x in listed] == [("stars", "stars")]
    data = post(live, "txt2img", alice, {"prompt": "a red circle <lora:stars:0.8>",
                                         "width": 64, "height": 64, "steps": 2})
    info = json.loads(data["info"])
    assert info["prompt"] == "a red circle"
    assert "<lora:stars:0.8>" in info["infotexts"][0]  # A1111 writes them back as tags
    # … and their hashes, by which Civitai links them (A1111's addnet hash of the file).
    stored = services.files.storage.get(
        f"{services.loras.get(lora_id).weights_key}/pytorch_lora_weights.safetensors")
    assert f'Lora hashes: "stars: {lora_hash(stored)}"' in info["infotexts"][0]
    r = httpx.post(f"{live.url}{V1}/txt2img", headers=alice, timeout=60,
                   json={"prompt": "x <lora:nope:1>", "width": 64, "height": 64})
    assert r.status_code == 400 and r.json()["param"] == "prompt", r.text
