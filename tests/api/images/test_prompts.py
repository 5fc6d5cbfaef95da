"""A1111 prompt syntax through HTTP on the demo model: weights, BREAK, long prompts."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.engines.diffusion.output import read_metadata
from tests.api.images.conftest import SUBMIT, submit
from tests.conftest import Account, DemoModel
from tests.image_support import fetch_image, mean_diff, wait_done

PROMPT = "a red circle on a blue background"
# ~140 CLIP tokens of words the demo model was not taught, before the ones it was: the demo's
# text encoder reads 32-token windows, SD's 77; either way the end is windows away.
FILLER = ", ".join(["a quiet afternoon with soft light and some distant hills"] * 13)


def render(client: TestClient, account: Account, **fields: Any) -> Image.Image:
    task = submit(client, account, select_seed=21, **{"prompt": PROMPT, **fields})
    done = wait_done(client, account.token, task["task_id"])
    assert done["state"] == "done", done
    return fetch_image(client, done["images"][0]["large"])


def same(a: Image.Image, b: Image.Image) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_weights_change_the_image_and_weight_one_does_not(client: TestClient,
                                                          account: Account) -> None:
    plain = render(client, account)
    assert same(plain, render(client, account, prompt="a (red:1.0) circle on a blue background"))
    assert same(plain, render(client, account, prompt="a red circle on a (blue:1) background"))
    stronger = render(client, account, prompt="a (red:1.6) circle on a blue background")
    assert mean_diff(plain, stronger) > 1
    weaker = render(client, account, prompt="a [[red]] circle on a blue background")
    assert mean_diff(plain, weaker) > 1 and mean_diff(stronger, weaker) > 1


def test_negative_prompts_take_the_same_syntax(client: TestClient, account: Account) -> None:
    plain = render(client, account, neg_prompt="green")
    assert same(plain, render(client, account, neg_prompt="(green:1.0)"))
    assert mean_diff(plain, render(client, account, neg_prompt="(green:1.8)")) > 1


def test_a_150_token_prompt_is_accepted_and_its_last_words_count(
        client: TestClient, account: Account, demo_model: DemoModel) -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(demo_model.path / "tokenizer"))
    long_red = f"{FILLER}, {PROMPT}"
    assert len(tokenizer(long_red, verbose=False).input_ids) >= 150
    red = render(client, account, prompt=long_red)
    green = render(client, account, prompt=f"{FILLER}, a green square on a yellow background")
    assert mean_diff(red, green) > 1  # the words after the first windows were read
    # BREAK starts a new window: the same words, placed differently, read differently.
    broken = render(client, account, prompt="a red circle BREAK on a blue background")
    assert mean_diff(broken, render(client, account)) > 0


def test_bad_weights_and_weights_on_plain_text_families_are_a_400(
        client: TestClient, account: Account) -> None:
    body = {"token": account.token, "n_images": 1, "output_size": "64x64"}
    response = client.post(SUBMIT, json={**body, "prompt": "a (red:11) circle"})
    assert response.status_code == 400
    assert response.json()["msg"] == "prompt: a weight must be 0-10 with brackets applied " \
        "(got 11)"
    response = client.post(SUBMIT, json={**body, "prompt": "x", "neg_prompt": "(a:-1)"})
    assert response.status_code == 400 and response.json()["msg"].startswith("neg_prompt:")


def test_the_prompt_is_recorded_as_written(client: TestClient, account: Account) -> None:
    task = submit(client, account, prompt="a (red:1.3) circle BREAK blue")
    done = wait_done(client, account.token, task["task_id"])
    assert done["prompt"] == "a (red:1.3) circle BREAK blue"
    meta = read_metadata(client.get(done["images"][0]["large"]).content)
    assert meta["prompt"] == "a (red:1.3) circle BREAK blue"
