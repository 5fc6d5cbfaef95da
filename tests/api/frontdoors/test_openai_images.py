"""The official ``openai`` package, unmodified, drawing with Ronghe's demo model through
``/v1/images/…``: generate (b64_json and url), edit with a mask (the unmasked area kept),
edit without one, variations, streamed partial images, and the errors in OpenAI's shape."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from ronghe.engines.diffusion.output import image_parameters
from tests.api.frontdoors.conftest import SECOND, Live, decoded, picture, png

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def client(live: Live) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.alice.api_key,
                       max_retries=0, timeout=300) as c:
        yield c


def test_generate_answers_b64_json_by_default(client: openai.OpenAI, live: Live) -> None:
    # gpt-image-1, as LibreChat's image tool hard-codes it: the default model.
    before = {t["task_id"] for t in live.tasks(live.alice)}
    r = client.images.generate(model="gpt-image-1", prompt=PROMPT, size="64x64", n=2,
                               quality="low")
    assert r.created > 0 and r.output_format == "png" and r.size == "64x64"
    assert len(r.data) == 2
    images = [decoded(item.b64_json) for item in r.data]
    assert all(im.format == "PNG" and im.size == (64, 64) for im in images)
    assert all(item.url is None and item.revised_prompt == PROMPT for item in r.data)
    # A1111's parameters text travels in the PNG, as A1111 writes it.
    text = image_parameters(images[0])
    assert text.startswith(PROMPT) and "Steps: 10," in text and "Model: ronghe-demo" in text
    # An ordinary task of the caller: in their history, not in anyone else's.
    new = [t for t in live.tasks(live.alice) if t["task_id"] not in before]
    assert len(new) == 1 and new[0]["state"] == "done" and new[0]["prompt"] == PROMPT
    assert all(t["task_id"] != new[0]["task_id"] for t in live.tasks(live.bob))


def test_generate_url_works_without_credentials(client: openai.OpenAI) -> None:
    r = client.images.generate(model="dall-e-3", prompt=PROMPT, size="128x64",
                               response_format="url", output_format="jpeg",
                               extra_body={"seed": 7})
    url = r.data[0].url
    assert url and r.data[0].b64_json is None
    fetched = httpx.get(url, timeout=30)  # no Authorization header at all
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(fetched.content)).size == (128, 64)
    # A format other than the stored one is a copy in that format at its own URL.
    webp = client.images.generate(prompt=PROMPT, size="64x64", response_format="url",
                                  output_format="webp", model=SECOND)
    assert httpx.get(webp.data[0].url, timeout=30).headers["content-type"] == "image/webp"


def test_edit_with_mask_paints_only_the_transparent_area(client: openai.OpenAI) -> None:
    source = picture()
    # Opaque on the left half (kept), transparent on the right half (painted anew).
    mask = Image.new("RGBA", source.size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (32, 0, 64, 64))
    r = client.images.edit(image=("source.png", png(source), "image/png"),
                           mask=("mask.png", png(mask), "image/png"),
                           prompt="a green square on a yellow background", model="dall-e-2",
                           extra_body={"seed": 3})
    edited = np.asarray(decoded(r.data[0].b64_json).convert("RGB"), np.int16)
    original = np.asarray(source, np.int16)
    assert edited.shape == original.shape
    # Kept exactly, away from the mask's feathered edge (mask_blur 4).
    assert np.abs(edited[:, :20] - original[:, :20]).max() <= 2
    assert np.abs(edited[:, 44:] - original[:, 44:]).mean() > 5


def test_edit_without_mask_is_image_to_image_of_the_first_image(
        client: openai.OpenAI) -> None:
    # A list is sent as image[] (as Open WebUI and LibreChat send several).
    first, second = png(picture()), png(picture((30, 200, 30)))
    r = client.images.edit(image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
                           prompt=PROMPT, size="auto", n=2, output_format="webp",
                           output_compression=80)
    assert r.size == "64x64" and len(r.data) == 2  # auto: the image's own size
    assert decoded(r.data[0].b64_json).format == "WEBP"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_variation(client: openai.OpenAI) -> None:
    r = client.images.create_variation(image=("v.png", png(picture()), "image/png"), n=1,
                                       size="64x64")
    assert decoded(r.data[0].b64_json).size == (64, 64)


def test_stream_sends_partial_images_then_the_result(client: openai.OpenAI) -> None:
    # 40 steps at 256 px: long enough for the 0.2 s previews to show.
    stream = client.images.generate(prompt=PROMPT, size="256x256", quality="max",
                                    stream=True, partial_images=2, n=1)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-1] == "image_generation.completed" and kinds.count(kinds[-1]) == 1
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    assert 1 <= len(partials) <= 2, kinds
    assert [p.partial_image_index for p in partials] == list(range(len(partials)))
    assert all(decoded(p.b64_json).size == (256, 256) for p in partials)
    done = events[-1]
    assert done.size == "256x256" and done.output_format == "png"
    assert decoded(done.b64_json).size == (256, 256)


def test_stream_of_an_edit_names_its_events(client: openai.OpenAI) -> None:
    stream = client.images.edit(image=("s.png", png(picture()), "image/png"), prompt=PROMPT,
                                stream=True, partial_images=0)
    assert [e.type for e in stream] == ["image_edit.completed"]


def test_errors_in_openai_shape(client: openai.OpenAI, live: Live) -> None:
    with pytest.raises(openai.AuthenticationError) as bad_key:
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="rhk_wrong",
                      max_retries=0).images.generate(prompt=PROMPT)
    assert bad_key.value.status_code == 401
    assert bad_key.value.body["type"] == "authentication_error"  # type: ignore[index]
    cases = [({"model": "no-such-model"}, "model"), ({"n": 11}, "n"),
             ({"size": "100x100"}, "size"), ({"quality": "ultra"}, "quality")]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as bad:
            client.images.generate(prompt=PROMPT, **extra)  # type: ignore[arg-type]
        body = bad.value.body
        assert body["param"] == param and body["type"] == "invalid_request_error", body  # type: ignore[index]
        assert body["message"].startswith(param), body  # type: ignore[index]
    # A mask that is not the image's size, and one without transparency.
    source = png(picture())
    for mask, problem in ((png(Image.new("RGBA", (32, 32))), "same size"),
                          (png(Image.new("RGB", (64, 64))), "alpha channel")):
        with pytest.raises(openai.BadRequestError) as bad:
            client.images.edit(image=("s.png", source, "image/png"),
                               mask=("m.png", mask, "image/png"), prompt=PROMPT)
        assert bad.value.body["param"] == "mask"  # type: ignore[index]
        assert problem in bad.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client.images.edit(image=("s.png", b"not an image", "image/png"), prompt=PROMPT)
    assert bad.value.body["param"] == "image"  # type: ignore[index]


def test_a_client_that_hangs_up_does_not_cancel_the_task(live: Live) -> None:
    before = {t["task_id"] for t in live.tasks(live.alice)}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{live.url}/v1/images/generations",
                   headers={"Authorization": f"Bearer {live.alice.api_key}"},
                   json={"prompt": PROMPT, "size": "256x256", "quality": "max", "n": 2},
                   timeout=0.5)
    deadline = time.monotonic() + 120
    while True:
        new = [t for t in live.tasks(live.alice) if t["task_id"] not in before]
        if new and new[0]["state"] == "done":
            break
        assert time.monotonic() < deadline, new
        time.sleep(0.2)
    assert len(new[0]["images"]) == 2


def test_b64_is_plain_base64(client: openai.OpenAI) -> None:
    r = client.images.generate(prompt=PROMPT, size="64x64", output_format="jpeg",
                               output_compression=50)
    raw = base64.b64decode(r.data[0].b64_json, validate=True)
    assert raw[:3] == b"\xff\xd8\xff"  # a JPEG, re-encoded at the quality asked for
