"""Inpainting with a mask through HTTP on the demo model: the unmasked area comes back as
it was sent, the options (blur, invert, only masked) do what they say and are recorded."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from ronghe.engines.diffusion.output import read_metadata, read_parameters
from tests.api.images.conftest import SUBMIT, submit, upload
from tests.conftest import Account
from tests.image_support import drawn, wait_done


def noisy(width: int, height: int, seed: int = 0) -> Image.Image:
    """An init image whose every pixel differs, so "unchanged" means bit for bit."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def rect_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def pixels(client: TestClient, url: str) -> np.ndarray:
    data = client.get(url).content
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def near(box: tuple[int, int, int, int], margin: int, shape: tuple[int, int]) -> np.ndarray:
    """True within ``margin`` pixels of the box (the feathered edge and the box itself)."""
    x1, y1, x2, y2 = box
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return (xs >= x1 - margin) & (xs <= x2 + margin) & (ys >= y1 - margin) & (ys <= y2 + margin)


def inpaint(client: TestClient, account: Account, init: Image.Image, mask: Image.Image,
            **fields: Any) -> dict[str, Any]:
    body = {"init_img": upload(client, account, init), "mask_img": upload(client, account, mask),
            "strength": 1.0, "select_seed": 5, **fields}
    done = wait_done(client, account.token, submit(client, account, **body)["task_id"])
    assert done["state"] == "done", done
    assert done["task_type"] == "inpaint"
    return done


def test_the_unmasked_area_comes_back_unchanged(client: TestClient, account: Account) -> None:
    init, box = noisy(128, 96), (20, 30, 70, 80)
    done = inpaint(client, account, init, rect_mask((128, 96), box), mask_blur=4,
                   output_format="png", output_size="128x96")
    out, source = pixels(client, done["images"][0]["large"]), np.asarray(init, np.int16)
    assert out.shape == (96, 128, 3)
    # Beyond the feathering (2.5 x mask_blur, rounded up, and a pixel of resampling) the
    # PNG holds the sent pixels bit for bit; inside the mask the model painted.
    kept = ~near(box, 12, out.shape[:2])
    assert np.array_equal(out[kept], source[kept])
    inside = ~near((0, 0, 127, 95), 0, out.shape[:2]) | near(box, -12, out.shape[:2])
    assert np.abs(out[inside] - source[inside]).mean() > 40
    meta = read_metadata(client.get(done["images"][0]["large"]).content)
    assert (meta["task_type"], meta["mask_blur"], meta["inpainting_fill"]) == ("inpaint", 4, 1)
    assert "Mask blur: 4" in read_parameters(client.get(done["images"][0]["large"]).content)
    # JPEG, the default: the same, within JPEG's rounding (on a picture JPEG can hold).
    smooth = drawn("green", "square", "white", size=128).resize((128, 96))
    jpeg = inpaint(client, account, smooth, rect_mask((128, 96), box), output_size="128x96")
    out, source = pixels(client, jpeg["images"][0]["large"]), np.asarray(smooth, np.int16)
    assert np.abs(out[kept] - source[kept]).mean() < 3


def test_mask_blur_feathers_and_invert_swaps(client: TestClient, account: Account) -> None:
    init, box = noisy(64, 64, 1), (16, 16, 47, 47)
    sharp = inpaint(client, account, init, rect_mask((64, 64), box), mask_blur=0,
                    output_format="png")
    out, source = pixels(client, sharp["images"][0]["large"]), np.asarray(init, np.int16)
    # No blur: every pixel outside the box is the source's.
    assert np.array_equal(out[~near(box, 1, (64, 64))], source[~near(box, 1, (64, 64))])
    inverted = inpaint(client, account, init, rect_mask((64, 64), box), mask_blur=0,
                       inpainting_mask_invert=True, output_format="png")
    out = pixels(client, inverted["images"][0]["large"])
    inner = near(box, -2, (64, 64))
    assert np.array_equal(out[inner], source[inner])  # the white box is kept now
    assert np.abs(out[~near(box, 2, (64, 64))] - source[~near(box, 2, (64, 64))]).mean() > 40
    text = read_parameters(client.get(inverted["images"][0]["large"]).content)
    assert "Mask mode: Inpaint not masked" in text and "Mask blur" not in text


def test_only_masked_paints_the_box_and_keeps_the_image_size(client: TestClient,
                                                            account: Account) -> None:
    # The upload is larger than the task's size and not of its shape: only the mask's box
    # (+ padding, grown to 1:1) is painted at 64x64, then pasted back.
    init, box = noisy(200, 120, 2), (120, 40, 150, 70)
    done = inpaint(client, account, init, rect_mask((200, 120), box), mask_blur=2,
                   inpaint_full_res=True, inpaint_full_res_padding=8, output_format="png",
                   output_size="64x64")
    image = done["images"][0]
    assert (image["width"], image["height"]) == (200, 120)
    out, source = pixels(client, image["large"]), np.asarray(init, np.int16)
    assert out.shape == (120, 200, 3)
    kept = ~near(box, 7, (120, 200))
    assert np.array_equal(out[kept], source[kept])
    assert np.abs(out[near(box, -6, (120, 200))] - source[near(box, -6, (120, 200))]
                  ).mean() > 40
    text = read_parameters(client.get(image["large"]).content)
    assert "Size: 64x64" in text  # the size it was painted at, as A1111 records it
    assert "Inpaint area: Only masked, Masked area padding: 8" in text


def test_an_alpha_mask_and_fill(client: TestClient, account: Account) -> None:
    # A mask with transparency: opaque repaints (A1111's rule), whatever its colour.
    init, box = noisy(64, 64, 3), (0, 0, 31, 63)
    alpha = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(alpha).rectangle(box, fill=(0, 0, 0, 255))
    done = inpaint(client, account, init, alpha, mask_blur=0, inpainting_fill=0,
                   output_format="png")
    out, source = pixels(client, done["images"][0]["large"]), np.asarray(init, np.int16)
    assert np.array_equal(out[:, 34:], source[:, 34:])
    assert np.abs(out[:, :28] - source[:, :28]).mean() > 40
    assert "Masked content: fill" in read_parameters(client.get(
        done["images"][0]["large"]).content)


def test_latent_fills_and_strength(client: TestClient, account: Account) -> None:
    form = client.get("/api/v1b/get_generation_form").json()["info"][0]
    demo = next(m for m in form["models"] if m["name"] == "ronghe-demo")
    assert demo["inpainting_fills"] == [1, 0, 2, 3]
    init, box = noisy(64, 64, 4), (0, 0, 31, 63)
    mask = rect_mask((64, 64), box)
    source = np.asarray(init, np.int16)
    runs = {(fill, strength): inpaint(client, account, init, mask, mask_blur=0,
                                      inpainting_fill=fill, strength=strength,
                                      output_format="png", output_size="64x64")
            for fill, strength in (("latent noise", 0.5), (3, 0.5), (1, 0.5), (1, 0.2))}
    out = {key: pixels(client, done["images"][0]["large"]) for key, done in runs.items()}
    for image in out.values():
        assert np.array_equal(image[:, 34:], source[:, 34:])
    # The latent fills start the masked area from noise or nothing, not from the picture.
    assert np.abs(out[("latent noise", 0.5)][:, :30] - out[(1, 0.5)][:, :30]).mean() > 1
    assert np.abs(out[(3, 0.5)][:, :30] - out[(1, 0.5)][:, :30]).mean() > 1
    # strength decides how far the masked area moves from the picture.
    change = {key: np.abs(image[:, :30] - source[:, :30]).mean() for key, image in out.items()}
    assert change[(1, 0.2)] < change[(1, 0.5)]
    large = runs[("latent noise", 0.5)]["images"][0]["large"]
    assert read_metadata(client.get(large).content)["inpainting_fill"] == 2
    assert "Masked content: latent noise" in read_parameters(client.get(large).content)


def test_mask_fields_are_checked_at_submit(client: TestClient, account: Account) -> None:
    init = upload(client, account, noisy(64, 64))
    mask = upload(client, account, rect_mask((64, 64), (0, 0, 10, 10)))

    def refused(**fields: Any) -> str:
        body = {"token": account.token, "prompt": "p", "output_size": "64x64", **fields}
        response = client.post(SUBMIT, json=body)
        assert response.status_code == 400, response.text
        return str(response.json()["msg"])

    assert refused(init_img=init, mask_img=mask, mask_blur=65) == \
        "mask_blur: must be an integer 0-64 (got 65)"
    assert refused(init_img=init, mask_img=mask, inpaint_full_res_padding=-1).startswith(
        "inpaint_full_res_padding: must be an integer 0-256")
    assert refused(init_img=init, mask_img=mask, inpainting_fill="smudge").startswith(
        "inpainting_fill: must be 0 (fill), 1 (original), 2 (latent noise) or 3")
    assert refused(init_img=init, mask_blur=8).startswith(
        "mask_blur: applies to inpainting only; send mask_img")
    assert refused(mask_img=mask).startswith("mask_img: needs init_img")
    assert refused(init_img=init, mask_img="http://testserver/files/nope").startswith(
        "mask_img must be an image URL returned by upload_imgs")
    assert refused(init_img=init, mask_img=mask,
                   cn_configs=[{"cn": "canny", "img": init}]).startswith(
        "mask_img: cannot be combined with ControlNet units")
    assert refused(output_format="gif") == \
        'output_format: must be one of jpeg, png, webp (got "gif")'
