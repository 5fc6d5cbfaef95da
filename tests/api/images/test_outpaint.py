"""task_submit's outpaint_config through HTTP: the larger canvas, the source kept, validation."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.images.conftest import SUBMIT, submit, upload
from tests.conftest import Account
from tests.image_support import fetch_image, wait_done


def source_image(width: int = 64, height: int = 48) -> Image.Image:
    # Gradients and a soft blob: distinctive everywhere, yet smooth enough that the
    # delivered JPEG stays close to it wherever the pixels were kept.
    ys, xs = np.mgrid[0:height, 0:width]
    blob = np.exp(-((xs - width / 3) ** 2 + (ys - height / 2) ** 2) / (min(width, height)) ** 2
                  * 8)
    pixels = np.stack([xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1),
                       40 + 190 * blob], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def uploaded(client: TestClient, account: Account, image: Image.Image) -> str:
    data = io.BytesIO()
    image.save(data, "PNG")
    body = client.post("/api/v1b/upload_img", files=[("init_img", ("s.png", data.getvalue(),
                                                                   "image/png"))],
                       headers={"Authorization": f"Bearer {account.token}"}).json()
    assert body["code"] == 0, body
    return str(body["info"][0])


def outpainted(client: TestClient, account: Account, config: dict[str, Any],
               seed: int) -> tuple[dict[str, Any], Image.Image]:
    task = submit(client, account, outpaint_config=config, select_seed=seed, ddim_steps=6)
    done = wait_done(client, account.token, task["task_id"])
    assert done["state"] == "done", done
    return done, fetch_image(client, done["images"][0]["large"])


@pytest.mark.parametrize(("ratio", "position", "canvas", "corner"), [
    (1.5, "topleft", (96, 72), (0, 0)),
    (2, "bottomright", (128, 96), (64, 48)),
    ("1.25", "Middle", (80, 64), (8, 8)),
])
def test_outpaint_keeps_the_source_and_paints_the_new_area(
        client: TestClient, account: Account, ratio: object, position: str,
        canvas: tuple[int, int], corner: tuple[int, int]) -> None:
    source = source_image()
    config = {"src_img": uploaded(client, account, source), "outpaint_ratio": ratio,
              "align_position": position}
    done, image = outpainted(client, account, config, seed=3)
    _, again = outpainted(client, account, config, seed=4)
    assert done["task_type"] == "outpaint"
    assert image.size == canvas and (done["images"][0]["width"],
                                     done["images"][0]["height"]) == canvas
    x, y = corner
    pixels = [np.asarray(im, np.float32) for im in (image, again)]
    original = np.asarray(source, np.float32)
    for p in pixels:  # the source region is the upload, as JPEG: its 8x8 blocks (16x16
        # for colour) that straddle the border also carry some of the painted area
        assert np.abs(p[y:y + 48, x:x + 64] - original).mean() < 8
        assert np.abs(p[y + 8:y + 40, x + 8:x + 56] - original[8:40, 8:56]).mean() < 3
    new = np.ones(pixels[0].shape[:2], bool)
    new[y:y + 48, x:x + 64] = False
    # Painted: not one flat colour, and what the model drew follows the seed.
    assert pixels[0][new].std(axis=0).mean() > 2
    assert np.abs(pixels[0][new] - pixels[1][new]).mean() > 1
    listed = client.post("/api/v1b/task_list", json={"token": account.token}).json()
    resubmit = listed["info"]["items"][0]["params"]["outpaint_config"]
    assert resubmit["outpaint_ratio"] == float(ratio)  # type: ignore[arg-type]
    assert resubmit["align_position"] == position.lower() and resubmit["src_img"]


def test_outpaint_config_is_validated_field_by_field(client: TestClient, account: Account,
                                                     other_account: Account) -> None:
    mine = upload(client, account, source_image())
    theirs = upload(client, other_account, source_image())
    wide = upload(client, account, source_image(1400, 16))
    cases: list[tuple[Any, dict[str, Any], str]] = [
        ({"src_img": mine, "outpaint_ratio": 3}, {},
         "outpaint_config.outpaint_ratio: must be one of 1.25, 1.5, 2 (got 3)"),
        ({"src_img": mine, "outpaint_ratio": True}, {},
         "outpaint_config.outpaint_ratio: must be one of 1.25, 1.5, 2"),
        ({"src_img": mine, "align_position": "center"}, {},
         "outpaint_config.align_position: must be one of topleft, topmiddle, topright, "
         "middleleft, middle, middleright, bottomleft, bottommiddle, bottomright "
         '(got "center")'),
        ({"outpaint_ratio": 1.5}, {}, "outpaint_config.src_img is required"),
        ({"src_img": ""}, {}, "outpaint_config.src_img: must be the URL of an image you "
                              "uploaded"),
        ({"src_img": theirs}, {}, "outpaint_config.src_img: no uploaded image of yours"),
        ({"src_img": "http://example.com/cat.png"}, {}, "outpaint_config.src_img"),
        ({"src_img": wide}, {}, "outpaint_config.outpaint_ratio: a 1400x16 image times 1.5 "
                                "is a 2096x24 canvas; model 'ronghe-demo' draws sides 64-2048"),
        ({"src_img": mine}, {"init_img": mine}, "outpaint_config: cannot be combined with "
                                                "init_img"),
        ("big", {}, "outpaint_config"),
    ]
    for config, extra, message in cases:
        response = client.post(SUBMIT, json={"token": account.token, "prompt": "x",
                                             "outpaint_config": config, **extra})
        body = response.json()
        assert response.status_code == 400, (config, body)
        assert body["code"] == 400 and body["info"] is None
        assert body["msg"].startswith(message), (config, body["msg"])
    assert client.post("/api/v1b/task_list", json={"token": account.token}).json()[
        "info"]["total"] == 0  # nothing was queued
