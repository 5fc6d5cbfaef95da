"""The hires fix and upscalers through HTTP on the demo model: task_submit's enable_hr and hr_
fields, upscaler models dropped into <data>/models/upscalers (a tiny random-weight ESRGAN built
from spandrel's own architecture class), the upscale task, and the 400s that name a field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import save_file

from ronghe.engines.diffusion import upscalers
from ronghe.engines.diffusion.output import read_user_comment
from ronghe.settings import Settings
from tests.api.images.conftest import SUBMIT, submit, upload
from tests.conftest import Account, make_settings
from tests.image_support import fetch_image, mean_diff, wait_done

UPSCALE = "/api/v1b/upscale"


def tiny_esrgan(path: Path, scale: int, seed: int = 0) -> Path:
    """An ESRGAN of spandrel's architecture with 8 filters and one block (random weights,
    under a megabyte), saved as safetensors where the folder scan finds it."""
    from ronghe.engines.diffusion.upscalers import spandrel

    spandrel()  # imports the architectures (without torchvision where it cannot load)
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    model = ESRGAN(num_filters=8, num_blocks=1, scale=scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".pth":  # a plain torch file, as most upscalers are shared
        torch.save(state, path)
    else:
        save_file(state, str(path))
    return path


@pytest.fixture
def settings(tmp_path: Path, demo_model: Any) -> Settings:
    data = tmp_path / "data"
    folder = upscalers.folder(data / "models")
    tiny_esrgan(folder / "tiny-esrgan-2x.safetensors", 2)
    (folder / "junk.pth").write_bytes(b"not a model")
    return make_settings(data, image_models=[demo_model.spec()], cpu_threads=1)


def picture(width: int = 40, height: int = 30) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs * 255 // (width - 1), ys * 255 // (height - 1),
                       128 + 0 * xs], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def done(client: TestClient, account: Account, task: dict[str, Any]) -> dict[str, Any]:
    result = wait_done(client, account.token, task["task_id"])
    assert result["state"] == "done", result
    return result


def hires(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    return done(client, account, submit(client, account, select_seed=11, n_images=2,
                                        **fields))


def test_the_hires_fix_delivers_the_scaled_size(client: TestClient, account: Account) -> None:
    plain = hires(client, account)
    lanczos = hires(client, account, enable_hr=True, hr_scale=2, hr_upscaler="lanczos",
                    hr_second_pass_steps=4, hr_denoising_strength=0.5)
    latent = hires(client, account, enable_hr=True, hr_scale=1.5,
                   hr_upscaler="Latent (bicubic antialiased)")
    model = hires(client, account, enable_hr=True, hr_upscaler="tiny-esrgan-2x")
    assert [(i["width"], i["height"]) for i in plain["images"]] == [(64, 64)] * 2
    for result, side in ((lanczos, 128), (latent, 96), (model, 128)):
        assert [(i["width"], i["height"]) for i in result["images"]] == [(side, side)] * 2
        assert [i["seed"] for i in result["images"]] == [11, 12]
        image = fetch_image(client, result["images"][0]["large"])
        assert image.size == (side, side)
        assert result["task_type"] == "txt2img"
    # The second pass repaints: not the first pass merely resized.
    first = fetch_image(client, plain["images"][0]["large"])
    assert mean_diff(fetch_image(client, lanczos["images"][0]["large"]), first) > 1
    # Recorded: the A1111 parameters text and task_list's params (to submit it again).
    data = client.get(lanczos["images"][0]["large"]).content
    text = read_user_comment(data)
    assert "Hires upscale: 2" in text and "Hires upscaler: Lanczos" in text, text
    listed = client.post("/api/v1b/task_list", json={"token": account.token}).json()
    params = {i["task_id"]: i["params"] for i in listed["info"]["items"]}
    assert {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Lanczos",
            "hr_second_pass_steps": 4, "hr_denoising_strength": 0.5,
            "output_size": "64x64"}.items() <= params[lanczos["task_id"]].items()
    assert params[plain["task_id"]]["enable_hr"] is False


def test_upscalers_are_listed_with_their_architecture_or_problem(
        client: TestClient, account: Account) -> None:
    auth = {"Authorization": f"Bearer {account.token}"}
    rows = client.get("/api/v1b/upscalers", headers=auth).json()["info"]
    by_name = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows][:8] == [
        "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
        "Latent (nearest)", "Latent (nearest-exact)", "Lanczos", "Nearest"]
    assert {"kind": "model", "architecture": "ESRGAN", "scale": 2,
            "problem": None}.items() <= by_name["tiny-esrgan-2x"].items()
    assert by_name["junk"]["problem"].startswith("not an upscaler model spandrel knows")
    form = client.get("/api/v1b/get_generation_form", headers=auth).json()["info"]
    field = next(f for f in form if f["name"] == "hr_upscaler")
    assert "tiny-esrgan-2x" in field["choices"] and "junk" not in field["choices"]
    assert {u["name"] for u in field["upscalers"]} >= {"tiny-esrgan-2x", "junk", "Lanczos"}
    demo = next(f for f in form if f["name"] == "model_name")["models"][0]
    assert demo["hires_upscalers"][0] == "Latent" and "tiny-esrgan-2x" in demo["hires_upscalers"]
    # A file dropped in later is listed at the next look, without a restart.
    tiny_esrgan(upscalers.folder(client.app.state.services.settings.models_path)  # type: ignore[attr-defined]
                / "later-4x.pth", 4)
    rows = client.get("/api/v1b/upscalers", headers=auth).json()["info"]
    assert {"name": "later-4x", "scale": 4}.items() <= next(
        r for r in rows if r["name"] == "later-4x").items()


def test_the_upscale_task(client: TestClient, account: Account) -> None:
    source = picture()
    url = upload(client, account, source)
    for upscaler, scale, size in (("tiny-esrgan-2x", 3, (120, 90)), ("Lanczos", 2, (80, 60)),
                                  ("nearest", 1.5, (60, 45))):
        answer = client.post(UPSCALE, json={"token": account.token, "init_img": url,
                                            "upscaler": upscaler, "scale": scale}).json()
        assert answer["code"] == 0 and answer["info"]["task_id"] == answer["task_id"], answer
        result = done(client, account, answer)
        assert result["task_type"] == "upscale"
        image = result["images"][0]
        assert (image["width"], image["height"]) == size
        got = fetch_image(client, image["large"])
        assert got.size == size
        if upscaler == "Lanczos":  # a resampler keeps the picture
            assert mean_diff(got, source.resize(size, Image.Resampling.LANCZOS)) < 4
    # A generated image upscales too (its task_result URL), and shows in the gallery.
    drawn = hires(client, account)
    answer = client.post(UPSCALE, json={"token": account.token, "upscaler": "tiny-esrgan-2x",
                                        "init_img": drawn["images"][0]["large"]}).json()
    result = done(client, account, answer)
    assert (result["images"][0]["width"], result["images"][0]["height"]) == (128, 128)
    listed = client.post("/api/v1b/task_list", json={"token": account.token}).json()["info"]
    item = listed["items"][0]
    assert {"kind": "upscale", "task_id": answer["task_id"], "state": "done",
            "upscaler": "tiny-esrgan-2x", "scale": 2,
            "source_size": "64x64"}.items() <= item.items()
    assert item["images"][0]["large"] and item["source_img"]


def test_tiles_bound_the_work_and_leave_no_seam() -> None:
    """A picture upscaled in small tiles is the picture upscaled whole (the margins give
    each tile its neighbours' context), up to rounding."""
    from ronghe.engines.diffusion.upscale import tiled

    spandrel = upscalers.spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(1)
    model = spandrel.ModelLoader().load_from_state_dict(
        ESRGAN(num_filters=8, num_blocks=1, scale=2).state_dict()).eval()
    source = picture(70, 50)
    seen: list[tuple[int, int]] = []
    whole = np.asarray(tiled(model, source, tile=512), np.int16)
    pieces = np.asarray(tiled(model, source, tile=24, overlap=16,
                              on_tile=lambda d, t: seen.append((d, t))), np.int16)
    assert seen[-1] == (9, 9) and whole.shape == pieces.shape == (100, 140, 3)
    assert np.abs(whole - pieces).max() <= 1


BAD: list[tuple[dict[str, Any], str]] = [
    ({"enable_hr": True, "hr_scale": 5}, "hr_scale: must be a number 1-4 (got 5)"),
    ({"enable_hr": True, "hr_scale": 0.5}, "hr_scale: must be a number 1-4 (got 0.5)"),
    ({"enable_hr": True, "hr_denoising_strength": 1.5},
     "hr_denoising_strength: must be a number 0-1 (got 1.5)"),
    ({"enable_hr": True, "hr_second_pass_steps": 151},
     "hr_second_pass_steps: must be an integer 0-150 (got 151)"),
    ({"enable_hr": "maybe"}, "enable_hr: must be"),
    ({"enable_hr": True, "hr_upscaler": "4x-Ultra"}, "hr_upscaler: unknown upscaler "
     "'4x-Ultra'; use one of Latent, Latent (antialiased)"),
    ({"enable_hr": True, "hr_upscaler": "junk"},
     "hr_upscaler: upscaler 'junk' cannot be used: not an upscaler model spandrel knows"),
    ({"enable_hr": True, "output_size": "1536x1536", "hr_scale": 2},
     "hr_scale: 1536x1536 times 2 is 3072x3072; model 'ronghe-demo' draws sides up to 2048"),
]


@pytest.mark.parametrize(("fields", "message"), BAD)
def test_bad_hires_values_name_the_field(client: TestClient, account: Account,
                                         fields: dict[str, Any], message: str) -> None:
    body = {"token": account.token, "prompt": "x", "output_size": "64x64", **fields}
    response = client.post(SUBMIT, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["msg"], response.json()


def test_hires_applies_to_text_to_image_only(client: TestClient, account: Account) -> None:
    url = upload(client, account, picture(64, 64))
    response = client.post(SUBMIT, json={"token": account.token, "prompt": "x",
                                         "output_size": "64x64", "init_img": url,
                                         "enable_hr": True})
    assert response.status_code == 400
    assert response.json()["msg"].startswith("enable_hr: the hires fix applies to "
                                             "text-to-image"), response.json()
    # Without enable_hr the hr_ fields are ignored, as A1111 does.
    task = submit(client, account, init_img=url, hr_upscaler="nonsense", hr_scale=3)
    assert done(client, account, task)["images"][0]["width"] == 64


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "init_img: the URL of one of your images"),
    ({"scale": 5}, "scale: must be a number 1-4 (got 5)"),
    ({"scale": "big"}, "scale: must be a number 1-4"),
    ({"upscaler": "Latent"}, "upscaler: 'Latent' upscales latents, which only the hires fix "
                             "has; use one of Lanczos, Nearest, tiny-esrgan-2x"),
    ({"upscaler": "ESRGAN_4x"}, "upscaler: unknown upscaler 'ESRGAN_4x'"),
    ({"upscaler": "junk"}, "upscaler: upscaler 'junk' cannot be used"),
    ({"init_img": "http://169.254.169.254/x"}, "init_img must be an image URL"),
])
def test_bad_upscale_values_name_the_field(client: TestClient, account: Account,
                                           fields: dict[str, Any], message: str) -> None:
    body = {"token": account.token, **fields}
    if "init_img" not in fields and fields:
        body["init_img"] = upload(client, account, picture())
    response = client.post(UPSCALE, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["msg"], response.json()


def test_an_upscale_past_the_pixel_cap_is_refused(tmp_path: Path, demo_model: Any) -> None:
    from ronghe.app import create_app
    from tests.conftest import make_account

    settings = make_settings(tmp_path / "d", image_models=[demo_model.spec()], cpu_threads=1,
                             upload_max_pixels=10_000)
    with TestClient(create_app(settings)) as client:
        account = make_account(client.app)
        url = upload(client, account, picture(60, 50))
        response = client.post(UPSCALE, json={"token": account.token, "init_img": url,
                                              "scale": 2})
        assert response.status_code == 400
        assert response.json()["msg"].startswith(
            "scale: a 60x50 image times 2 is 120x100; the largest is 8192 pixels a side and "
            "10,000 in all"), response.json()
