"""The hires fix panel and the viewer's Upscale button in real Chromium (issue 29): a hires
task from the form delivers the scaled size, and an image upscaled from the gallery with an
upscaler model of the server's folder becomes a task of its own, shown in the gallery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ronghe.engines.diffusion import upscalers
from tests.api.images.test_upscale import tiny_esrgan
from tests.conftest import DemoModel
from tests.web.conftest import Console, WebServer, screenshot, sign_in, start_server, stop_server

EMAIL = "ursula@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    data = tmp_path_factory.mktemp("web-upscale") / "data"
    tiny_esrgan(upscalers.folder(data / "models") / "tiny-esrgan-2x.safetensors", 2)
    srv, log = start_server(data, demo_model, [EMAIL])
    yield srv
    stop_server(srv, log)


def options(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} option", "els => els.map(e => e.value)")


def test_hires_from_the_form_then_upscale_from_the_gallery(page: Any, server: WebServer,
                                                          console: Console) -> None:
    console.allow(r"status of 400")  # the bad scale sent on purpose at the end
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.wait_for_selector("#panel-hires")
    page.click("#panel-hires summary")
    assert page.locator("#hr-options").is_hidden()
    page.check("#enable-hr")
    upscalers_offered = options(page, "#hr-upscaler")
    assert upscalers_offered[0] == "Latent" and "tiny-esrgan-2x" in upscalers_offered
    page.select_option("#hr-upscaler", "Lanczos")
    page.locator("[data-field=hr_scale] input[type=number]").fill("2")
    page.locator("[data-field=hr_second_pass_steps] input[type=number]").fill("3")
    page.fill("#generate-form textarea >> nth=0", "a red circle on a blue background")
    page.locator("[data-field=n_images] input[type=number]").fill("1")
    page.locator("[data-field=ddim_steps] input[type=number]").fill("4")
    page.select_option("#size-select", "512x512")
    with page.expect_response("**/api/v1b/task_submit") as submitted:
        page.click("#generate-btn")
    assert submitted.value.status == 200, submitted.value.text()
    task_id = submitted.value.json()["task_id"]
    card = page.locator(f".task-card[data-task='{task_id}']")
    card.locator(".image-grid img").first.wait_for(timeout=180_000)
    token = page.evaluate("sessionStorage.getItem('ronghe.token')")
    result = httpx.post(server.url + "/api/v1b/task_result", json={"task_id": task_id},
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert (result["images"][0]["width"], result["images"][0]["height"]) == (1024, 1024)

    page.goto("/#/gallery")
    page.locator(f".gallery-item[data-task='{task_id}'] button.tile").click()
    dialog = page.locator("dialog[open]")
    assert "Lanczos × 2" in dialog.locator(".params").inner_text()
    dialog.locator("#upscale-btn").click()
    dialog.locator("#upscale-form").wait_for()
    # The upscaler models come first in what people want; the Latent ones are not offered.
    assert page.locator("#upscaler-select").input_value() == "tiny-esrgan-2x"
    assert "Latent" not in options(page, "#upscaler-select")
    page.select_option("#upscaler-select", "Lanczos")
    page.locator("#upscale-form [data-field=scale] input[type=number]").fill("1.5")
    with page.expect_response("**/api/v1b/upscale") as asked:
        dialog.locator("#upscale-start").click()
    assert asked.value.status == 200, asked.value.text()
    upscale_id = asked.value.json()["task_id"]
    done = dialog.locator(f".task-card[data-task='{upscale_id}'] .image-grid img").first
    done.wait_for(timeout=120_000)
    assert dialog.locator(f".task-card[data-task='{upscale_id}'] .task-prompt").inner_text() \
        == "Upscaled ×1.5 (Lanczos)"
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=done.element_handle())
    screenshot(page, "upscale")
    result = httpx.post(server.url + "/api/v1b/task_result", json={"task_id": upscale_id},
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert (result["images"][0]["width"], result["images"][0]["height"]) == (1536, 1536)

    # A bad value comes back next to its field.
    page.locator("#upscale-form [data-field=scale] input[type=number]").fill("9")
    dialog.locator("#upscale-start").click()
    error = dialog.locator("#upscale-form [data-field=scale] .field-error")
    error.wait_for()
    page.wait_for_function("(el) => el.textContent.includes('scale: must be a number 1-4')",
                           arg=error.element_handle())
    page.keyboard.press("Escape")

    page.reload()
    tile = page.locator(f".gallery-item[data-task='{upscale_id}']")
    tile.wait_for()
    assert tile.locator(".tile-prompt").inner_text() == "Upscaled ×1.5 (Lanczos)"
    assert page.locator(".gallery-item").first.get_attribute("data-task") == upscale_id
