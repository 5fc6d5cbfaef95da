"""upload_imgs / upload_img through HTTP: auth forms, per-file errors, all-or-nothing."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.settings import Settings
from tests.conftest import Account, DemoModel, make_settings
from tests.training_support import concept_images, encode

UPLOAD = "/api/v1b/upload_imgs"


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                         upload_max_files=4, upload_max_pixels=1_000_000,
                         upload_max_bytes=200_000, cpu_threads=1)


def _part(image: Image.Image, fmt: str = "PNG", name: str = "a.png") -> tuple:
    return ("init_img", (name, encode(image, fmt), f"image/{fmt.lower()}"))


def _stored(client: TestClient, account: Account) -> int:
    services = client.app.state.services  # type: ignore[attr-defined]
    return services.files.list(account.user_id, kind="upload")[1]


def test_upload_with_token_as_multipart_file_part_like_the_spec(client: TestClient,
                                                                account: Account) -> None:
    images = concept_images(2)
    # The spec's own example: files=[('init_img', f), ..., ('token', token)].
    files = [_part(images[0]), _part(images[1], "WEBP", "b.webp"), ("token", account.token)]
    body = client.post(UPLOAD, files=files).json()
    assert body["code"] == 0 and body["msg"] == "" and len(body["info"]) == 2
    fetched = client.get(body["info"][1].replace("http://testserver", ""))
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(fetched.content)).size == (64, 64)


def test_upload_with_bearer_header_and_form_field(client: TestClient, account: Account) -> None:
    image = concept_images(1)[0]
    by_header = client.post("/api/v1b/upload_img", files=[_part(image)],
                            headers={"Authorization": f"Bearer {account.token}"})
    by_field = client.post(UPLOAD, files=[_part(image)], data={"token": account.token})
    assert by_header.status_code == by_field.status_code == 200
    assert client.post(UPLOAD, files=[_part(image)]).status_code == 401
    assert _stored(client, account) == 2


def test_one_bad_file_stores_nothing_and_is_named(client: TestClient, account: Account) -> None:
    good = concept_images(1)[0]
    files = [_part(good), ("init_img", ("notes.txt", b"plain text", "text/plain")),
             _part(good, "GIF", "anim.gif")]
    response = client.post(UPLOAD, files=files, data={"token": account.token})
    body = response.json()
    assert response.status_code == 400 and body["code"] == 400 and body["info"] is None
    assert "init_img[1] ('notes.txt'): not a JPEG, PNG or WebP image" in body["msg"]
    assert "init_img[2] ('anim.gif')" in body["msg"]
    assert "init_img[0]" not in body["msg"]
    assert _stored(client, account) == 0


def test_limits_on_files_bytes_and_pixels(client: TestClient, account: Account) -> None:
    image = concept_images(1)[0]
    auth = {"Authorization": f"Bearer {account.token}"}
    too_many = client.post(UPLOAD, files=[_part(image)] * 5, headers=auth)
    assert too_many.status_code == 400
    assert "at most 4 files per request (upload_max_files); got 5" in too_many.json()["msg"]

    bomb = encode(Image.new("L", (1500, 1500), 0), "PNG")  # 2.25 MP in a few kB
    response = client.post(UPLOAD, files=[("init_img", ("bomb.png", bomb, "image/png"))],
                           headers=auth)
    assert response.status_code == 413, response.text
    assert "upload_max_pixels" in response.json()["msg"]

    noise = Image.frombytes("RGB", (400, 400), random.Random(0).randbytes(400 * 400 * 3))
    big = encode(noise, "PNG")
    assert len(big) > 200_000
    response = client.post(UPLOAD, files=[("init_img", ("big.png", big, "image/png"))],
                           headers=auth)
    assert response.status_code == 413 and "upload_max_bytes" in response.json()["msg"]

    missing = client.post(UPLOAD, data={"token": account.token})
    assert missing.status_code == 400 and "init_img" in missing.json()["msg"]
    two = client.post("/api/v1b/upload_img", files=[_part(image)] * 2, headers=auth)
    assert two.status_code == 400 and "exactly one file" in two.json()["msg"]
    assert _stored(client, account) == 0


def test_exif_rotation_applies_before_storage(client: TestClient, account: Account) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    data = encode(Image.new("RGB", (60, 20), (200, 30, 30)), "JPEG", exif=exif)
    body = client.post(UPLOAD, files=[("init_img", ("r.jpg", data, "image/jpeg"))],
                       data={"token": account.token}).json()
    fetched = client.get(body["info"][0].replace("http://testserver", ""))
    assert Image.open(io.BytesIO(fetched.content)).size == (20, 60)


def test_a_file_too_large_is_reported_with_its_own_size(client: TestClient,
                                                        account: Account) -> None:
    noise = Image.frombytes("RGB", (400, 400), random.Random(1).randbytes(400 * 400 * 3))
    big = encode(noise, "PNG")
    small = encode(concept_images(1)[0], "PNG")
    response = client.post(UPLOAD, files=[("init_img", ("ok.png", small, "image/png")),
                                          ("init_img", ("big.png", big, "image/png"))],
                           headers={"Authorization": f"Bearer {account.token}"})
    assert response.status_code == 413, response.text
    assert (f"init_img[1] ('big.png'): file is {len(big)} bytes; the limit is 200000 bytes "
            "(upload_max_bytes)") in response.json()["msg"]
    assert _stored(client, account) == 0
