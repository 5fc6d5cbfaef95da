"""The Models page's "Add a model" panel in real Chromium against a real ``ronghe serve``:
the first-run page and the demo card say what the demo model draws; an admin picks from the
catalogue, starts a pull, sees its progress, cancels one, and a pulled model appears and
generates with no restart.  Files come from the model server of tests/download_support.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import DemoModel
from tests.download_support import ModelServer, demo_checkpoint, model_server
from tests.web.conftest import Console, WebServer, open_page, screenshot, start_server, stop_server
from tests.web.test_app import generate

ADMIN, ADMIN_PW = "root@example.com", "first admin pw"
USER, USER_PW = "bea@example.com", "bea's password"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory,
          demo_model: DemoModel) -> Iterator[ModelServer]:
    root = tmp_path_factory.mktemp("served")
    checkpoint = demo_checkpoint(demo_model.path, root / "shapes.safetensors")
    slow = root / "slow.safetensors"
    shutil.copyfile(checkpoint, slow)
    with model_server(ModelServer(files={"shapes.safetensors": checkpoint,
                                         "slow.safetensors": slow})) as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    srv, log = start_server(tmp_path_factory.mktemp("web-models") / "data", demo_model, [])
    yield srv
    stop_server(srv, log)


def test_add_a_model_pull_cancel_and_generate_with_it(
        page: Any, server: WebServer, files: ModelServer, console: Console) -> None:
    # The first run says what the demo model can draw and where real models come from.
    page.goto("/")
    note = page.locator("#setup-demo")
    note.wait_for()
    assert "one coloured shape" in note.inner_text() and "Add a model" in note.inner_text()
    page.fill("input[type=email]", ADMIN)
    page.fill("input[type=password]", ADMIN_PW)
    page.click("form button[type=submit]")
    page.wait_for_selector("#sign-out")

    page.goto("/#/models")
    demo = page.locator("#models-base .model-card[data-model='ronghe-demo']")
    demo.wait_for()
    assert "circle, square or triangle" in demo.inner_text()
    demo.locator("#demo-add-model").click()
    page.wait_for_function("() => document.activeElement.id === 'pull-ref'")

    # The catalogue picker fills the field and shows the licence.
    page.locator("#pull-catalogue option[value='sdxl-turbo']").wait_for(state="attached")
    page.select_option("#pull-catalogue", "sdxl-turbo")
    assert page.input_value("#pull-ref") == "sdxl-turbo"
    assert "Stability AI Community License" in page.inner_text("#pull-about")

    # A bad reference lands next to its field.
    page.fill("#pull-ref", "not a model")
    page.click("#pull-start")
    error = page.locator("[data-field=ref] .field-error")
    error.wait_for()
    assert error.inner_text().startswith("ref:")
    console.allow("status of 400")

    # A slow pull shows its progress and is cancelled.
    files.rate = 300_000
    page.fill("#pull-ref", f"{files.url}/files/slow.safetensors")
    page.click("#pull-start")
    slow = page.locator(".pull[data-state='running']")
    slow.wait_for()
    page.wait_for_function("() => /MB \\/ /.test(document.querySelector(\".pull[data-state="
                           "'running'] .pull-stats\")?.innerText || '')")
    bar = slow.locator("[role=progressbar]")
    assert bar.get_attribute("aria-label") == "Download progress"
    screenshot(page, "add-model")
    slow.get_by_role("button", name="Cancel").click()
    page.locator(".pull[data-state='cancelled']").wait_for()
    files.rate = None

    # A pull that finishes: its card appears, and it generates.
    page.fill("#pull-ref", f"{files.url}/files/shapes.safetensors")
    page.click("#pull-start")
    page.locator(".pull[data-state='done']").wait_for(timeout=60_000)
    assert "Installed: image, demo" in page.inner_text(".pull[data-state='done']")
    card = page.locator("#models-base .model-card[data-model='shapes']")
    card.wait_for()
    card.get_by_role("button", name="Generate with it").click()
    page.wait_for_url("**/#/generate**")
    generate(page, "a red circle on a blue background", go=False)


def test_users_who_are_not_admins_see_no_panel(browser: Any, server: WebServer,
                                              console: Console) -> None:
    token = httpx.post(f"{server.url}/api/v1b/get_token",
                       json={"email": ADMIN, "password": ADMIN_PW}).json()["token"]
    added = httpx.post(f"{server.url}/api/v1b/admin/user_add",
                       headers={"Authorization": f"Bearer {token}"},
                       json={"email": USER, "password": USER_PW})
    assert added.status_code == 200, added.text
    page = open_page(browser, server.url, console)
    try:
        page.goto("/")
        page.fill("input[type=email]", USER)
        page.fill("input[type=password]", USER_PW)
        page.click("form button[type=submit]")
        page.wait_for_selector("#sign-out")
        page.goto("/#/models")
        demo = page.locator("#models-base .model-card[data-model='ronghe-demo']")
        demo.wait_for()
        assert "ask an administrator" in demo.inner_text()
        assert page.locator("#add-model").count() == 0
    finally:
        page.context.close()
