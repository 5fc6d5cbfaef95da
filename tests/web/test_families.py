"""A FLUX.1 model dropped into the models folder, in real Chromium: the generate form and the
Models page show its family and sizes, and a picture is drawn with it from the form."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DemoModel
from tests.web.conftest import WebServer, sign_in, start_server, stop_server
from tools import family_models

EMAIL = "flo@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    data = tmp_path_factory.mktemp("web-families") / "data"
    family_models.save("flux", data / "models" / "flux-schnell", "schnell")
    srv, log = start_server(data, demo_model, [EMAIL])
    yield srv
    stop_server(srv, log)


def test_a_flux_model_shows_its_family_and_draws(page: Any, server: WebServer) -> None:
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.wait_for_selector("#generate-form")
    page.select_option("[data-field=model_name] select", "flux-schnell")
    hint = page.locator("#model-family")
    assert hint.inner_text() == "FLUX.1 · sides 128–2048 px, multiples of 16"
    neg = page.locator("[data-field=neg_prompt] textarea")
    assert neg.is_disabled()
    assert neg.get_attribute("placeholder") == "This model takes no negative prompt"
    assert page.locator("[data-field=ddim_steps] input[type=number]").input_value() == "4"
    # The mask's starts: FLUX has no latent fills; they come back with the demo (below).
    fills = page.locator("[data-field=inpainting_fill] select option:not([hidden])")
    assert fills.evaluate_all("os => os.map(o => o.value)") == ["1", "0"]

    page.fill("#generate-form textarea >> nth=0", "a fox in the snow")
    page.locator("[data-field=n_images] input[type=number]").fill("1")
    page.select_option("[data-field=output_size] select", "custom")
    page.locator("[data-field=width] input").fill("128")
    page.locator("[data-field=height] input").fill("128")
    with page.expect_response("**/api/v1b/task_submit") as submitted:
        page.click("#generate-btn")
    assert submitted.value.status == 200, submitted.value.text()
    task_id = submitted.value.json()["task_id"]
    image = page.locator(f".task-card[data-task='{task_id}'] .image-grid img").first
    image.wait_for(timeout=120_000)
    assert image.evaluate("img => img.naturalWidth") == 128

    # Back to the demo model: its negative prompt is used again.
    page.select_option("[data-field=model_name] select", "ronghe-demo")
    assert neg.is_enabled()
    assert fills.evaluate_all("os => os.map(o => o.value)") == ["1", "0", "2", "3"]

    page.goto("/#/models")
    card = page.locator("#models-base .model-card[data-model='flux-schnell']")
    card.wait_for()
    assert "FLUX.1 · 128–2048 px" in card.locator(".chips").inner_text()
