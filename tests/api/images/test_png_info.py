"""PNG info through HTTP: A1111's parameters text in every image Ronghe writes, kept by
uploads, and read back by ``png_info`` (A1111's own images included)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from ronghe.engines.diffusion.output import read_parameters, user_comment
from tests.api.images.conftest import submit
from tests.conftest import Account
from tests.image_support import fetch_image, wait_done

PNG_INFO = "/api/v1b/png_info"
# Written by hand in the exact shape AUTOMATIC1111 1.10 gives a hires-fix txt2img with a
# LoRA (modules/processing.py create_infotext; quoting by infotext_utils.quote).
A1111_TEXT = (
    "masterpiece, best quality, (red circle:1.2), blue background <lora:add_detail:0.6>\n"
    "Negative prompt: (worst quality, low quality:1.4), easynegative\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 2434906911, "
    "Size: 512x768, Model hash: 7f96a1a9ca, Model: anything-v5, VAE hash: 735e4c3a44, "
    "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Denoising strength: 0.45, Clip skip: 2, "
    'Hires upscale: 2, Hires steps: 15, Hires upscaler: R-ESRGAN 4x+ Anime6B, Lora hashes: '
    '"add_detail: 7c6bad76eb54", TI hashes: "easynegative: c74b4e810b03", Version: v1.10.1')
# An A1111 inpainting, as its img2img tab writes it ("Only masked", "fill").
A1111_INPAINT = (
    "a red hat\nSteps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, "
    "Seed: 123, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    "Denoising strength: 0.75, Mask blur: 8, Inpaint area: Only masked, "
    "Masked area padding: 48, Masked content: fill, Version: v1.10.1")


def a1111_png(text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    info.add_text("Comment", "not kept")
    buf = io.BytesIO()
    Image.new("RGB", (64, 96), (10, 20, 200)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def upload_bytes(client: TestClient, account: Account, data: bytes, name: str) -> str:
    response = client.post("/api/v1b/upload_img", data={"token": account.token},
                           files={"init_img": (name, data)})
    assert response.status_code == 200, response.text
    return str(response.json()["info"][0])


def png_info(client: TestClient, account: Account, url: str) -> dict[str, Any]:
    response = client.post(PNG_INFO, json={"token": account.token, "init_img": url})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    return dict(body["info"])


def test_a_real_a1111_png_reads_back_as_its_settings(client: TestClient,
                                                     account: Account) -> None:
    url = upload_bytes(client, account, a1111_png(A1111_TEXT), "00012-2434906911.png")
    # The stored upload is a re-encoded copy that keeps the parameters, and only them.
    stored = client.get(url).content
    with Image.open(io.BytesIO(stored)) as image:
        assert image.info.get("parameters") == A1111_TEXT and "Comment" not in image.info
    info = png_info(client, account, url)
    assert info["text"] == A1111_TEXT
    p = info["parameters"]
    assert p["Prompt"] == ("masterpiece, best quality, (red circle:1.2), blue background "
                           "<lora:add_detail:0.6>")
    assert p["Negative prompt"] == "(worst quality, low quality:1.4), easynegative"
    assert (p["Steps"], p["Sampler"], p["Schedule type"], p["CFG scale"]) == \
        ("28", "DPM++ 2M", "Karras", "6.5")
    assert (p["Size-1"], p["Size-2"], p["Model hash"]) == ("512", "768", "7f96a1a9ca")
    assert p["Lora hashes"] == "add_detail: 7c6bad76eb54"  # the quoted value, unquoted
    assert p["Version"] == "v1.10.1"
    assert info["settings"] == {
        "prompt": "masterpiece, best quality, (red circle:1.2), blue background",
        "neg_prompt": "(worst quality, low quality:1.4), easynegative",
        "lora_configs": [{"versionid": "add_detail", "merge_weight": 0.6}],
        "ddim_steps": 28, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "scale": 6.5,
        "select_seed": 2434906911, "output_size": "512x768", "model_name": "anything-v5",
        "enable_hr": True, "hr_scale": 2.0, "hr_second_pass_steps": 15,
        "hr_upscaler": "R-ESRGAN 4x+ Anime6B", "hr_denoising_strength": 0.45}


def test_an_a1111_jpeg_and_an_inpainting_read_back(client: TestClient,
                                                   account: Account) -> None:
    # A1111 writes JPEG and WebP parameters as EXIF UserComment (piexif, UNICODE).
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = user_comment(A1111_INPAINT)
    exif[0x010F] = "a camera maker, dropped"
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 20, 20)).save(buf, "JPEG", exif=exif)
    url = upload_bytes(client, account, buf.getvalue(), "inpaint.jpg")
    stored = client.get(url).content
    assert read_parameters(stored) == A1111_INPAINT
    with Image.open(io.BytesIO(stored)) as image:
        assert 0x010F not in image.getexif()
    settings = png_info(client, account, url)["settings"]
    assert settings == {"prompt": "a red hat", "neg_prompt": "", "ddim_steps": 30,
                        "sampler_name": "Euler a", "scheduler": "Automatic", "scale": 7.0,
                        "select_seed": 123, "output_size": "512x512",
                        "model_name": "v1-5-pruned-emaonly", "strength": 0.75,
                        "mask_blur": 8, "inpaint_full_res": True,
                        "inpaint_full_res_padding": 48, "inpainting_fill": 0}


def test_ronghe_images_round_trip_through_png_info(client: TestClient,
                                                   account: Account) -> None:
    fields = {"prompt": "a red circle, on a blue background: big", "neg_prompt": "green",
              "select_seed": 77, "scale": 6.5, "ddim_steps": 5, "output_size": "96x64"}
    first = wait_done(client, account.token, submit(client, account, output_format="png",
                                                    **fields)["task_id"])
    assert first["state"] == "done", first
    large = client.get(first["images"][0]["large"])
    assert large.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(large.content)) as image:
        assert image.format == "PNG"
        text = image.info["parameters"]
    # A prompt holding ',' and ':' stays the first line, unquoted, as A1111 writes it; the
    # sampler that ran is recorded (the demo's own, DDIM).
    assert text.startswith("a red circle, on a blue background: big\nNegative prompt: green\n"
                           "Steps: 5, Sampler: DDIM, Schedule type: Automatic, CFG scale: 6.5, "
                           "Seed: 77, Size: 96x64, Model: ronghe-demo, Rendered at: 48x32, "
                           "Version: Ronghe ")
    settings = png_info(client, account, first["images"][0]["large"])["settings"]
    assert settings == {**fields, "model_name": "ronghe-demo", "sampler_name": "DDIM",
                        "scheduler": "Automatic"}
    # The settings as read back give the same image again.
    again = wait_done(client, account.token, submit(client, account, output_format="png",
                                                    **settings)["task_id"])
    assert np.array_equal(np.asarray(fetch_image(client, first["images"][0]["large"])),
                          np.asarray(fetch_image(client, again["images"][0]["large"])))
    # Every variant carries it, in every format.
    for output_format in ("jpeg", "webp"):
        done = wait_done(client, account.token, submit(
            client, account, output_format=output_format, **fields)["task_id"])
        for variant in ("large", "middle", "small"):
            url = done["images"][0][variant]
            assert png_info(client, account, url)["settings"]["select_seed"] == 77, url


def test_an_image_without_parameters_and_bad_requests(client: TestClient, account: Account,
                                                      other_account: Account) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    url = upload_bytes(client, account, buf.getvalue(), "plain.png")
    assert png_info(client, account, url) == {"text": "", "parameters": {}, "settings": {}}
    missing = client.post(PNG_INFO, json={"token": account.token})
    assert missing.status_code == 400
    assert missing.json()["msg"].startswith("init_img: the URL of an image you uploaded")
    theirs = client.post(PNG_INFO, json={"token": other_account.token, "init_img": url})
    assert theirs.status_code in (400, 404) and "init_img" in theirs.json()["msg"]
    assert client.post(PNG_INFO, json={"init_img": url}).status_code == 401
