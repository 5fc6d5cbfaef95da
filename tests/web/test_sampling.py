"""The generate form's sampler and schedule type in real Chromium (issue 29): the choices
come from the selected model, and what is picked is what the task ran."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import DemoModel
from tests.web.conftest import WebServer, sign_in, start_server, stop_server

EMAIL = "sam@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    srv, log = start_server(tmp_path_factory.mktemp("web-sampling") / "data", demo_model,
                            [EMAIL])
    yield srv
    stop_server(srv, log)


def options(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} option", "els => els.map(e => e.value)")


def test_sampler_choices_follow_the_model_and_reach_the_task(page: Any,
                                                             server: WebServer) -> None:
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.wait_for_selector("#sampler-select")
    samplers = options(page, "#sampler-select")
    assert samplers[0] == "" and samplers[1:4] == ["Euler", "Euler a", "DPM++ 2M"]
    assert page.locator("#scheduler-select").is_disabled()  # the model's own sampler
    page.select_option("#sampler-select", "DDIM")
    assert options(page, "#scheduler-select") == ["Automatic", "SGM Uniform"]
    page.select_option("#sampler-select", "DPM++ 2M")
    assert page.locator("#scheduler-select").is_enabled()
    assert options(page, "#scheduler-select") == ["Automatic", "Karras", "Exponential",
                                                  "SGM Uniform"]
    assert "Karras" in page.locator("#scheduler-select option").first.inner_text()
    page.select_option("#scheduler-select", "Exponential")

    page.fill("#generate-form textarea >> nth=0", "a (red:1.2) circle on a blue background")
    page.locator("[data-field=n_images] input[type=number]").fill("1")
    page.locator("[data-field=ddim_steps] input[type=number]").fill("4")
    with page.expect_response("**/api/v1b/task_submit") as submitted:
        page.click("#generate-btn")
    assert submitted.value.status == 200
    task_id = submitted.value.json()["task_id"]
    card = page.locator(f".task-card[data-task='{task_id}']")
    card.locator(".image-grid img").first.wait_for(timeout=180_000)
    token = page.evaluate("sessionStorage.getItem('ronghe.token')")
    result = httpx.post(server.url + "/api/v1b/task_result", json={"task_id": task_id},
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert (result["sampler_name"], result["scheduler"]) == ("DPM++ 2M", "Exponential")
    assert result["prompt"] == "a (red:1.2) circle on a blue background"

    # Back to the model's own: neither field is sent.
    page.select_option("#sampler-select", "")
    assert page.locator("#scheduler-select").is_disabled()
    with page.expect_request("**/api/v1b/task_submit") as sent:
        page.click("#generate-btn")
    body = sent.value.post_data_json
    assert "sampler_name" not in body and "scheduler" not in body
