"""/docs and /redoc render in real Chromium with every request to another origin refused
(an offline machine), under the pages' own Content-Security-Policy: no CSP violation, no
script error (issue 26, item 7)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DemoModel
from tests.web.conftest import Console, WebServer, open_page, start_server, stop_server

# Where a test saves what the browser drew (to look at by hand): RONGHE_DOCS_SHOTS=<folder>.
SHOTS = os.environ.get("RONGHE_DOCS_SHOTS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    srv, log = start_server(tmp_path_factory.mktemp("docs") / "data", demo_model, [],
                            RONGHE_CHAT_MODELS="[]")
    yield srv
    stop_server(srv, log)


@pytest.fixture
def offline_page(browser: Any, server: WebServer, console: Console) -> Iterator[Any]:
    """A page that can reach this server only; what it tried elsewhere is ``page.foreign``."""
    page = open_page(browser, server.url, console)
    foreign: list[str] = []

    def only_here(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_here)
    page.foreign = foreign
    yield page
    page.context.close()


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_swagger_ui_lists_the_operations_offline(offline_page: Any) -> None:
    page = offline_page
    page.goto("/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert len(paths) > 20 and any("/api/v1b/get_token" in p for p in paths), paths[:5]
    assert "Ronghe" in page.locator(".info .title").inner_text()
    # Its stylesheet applied: an operation block is laid out as Swagger UI draws it.
    assert page.locator(".opblock").first.evaluate(
        "e => getComputedStyle(e).borderRadius") == "4px"
    # Expanding an operation and trying it works (the UI's scripts run, not only the first
    # render, and its request to this server passes the CSP): the first one is /healthz.
    page.locator(".opblock-summary").first.click()
    page.locator(".opblock-body").first.wait_for()
    page.locator(".try-out__btn").first.click()
    page.locator(".execute").first.click()
    status = page.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    shot(page, "docs-swagger")
    assert page.foreign == []


def test_redoc_lists_the_operations_and_searches_offline(offline_page: Any,
                                                        console: Console) -> None:
    # ReDoc's footer shows a logo from cdn.redoc.ly: the CSP blocks it before any request
    # (the route below would see one) and ReDoc hides it.
    console.allow(r"Loading the image 'https://cdn\.redoc\.ly/redoc/logo-mini\.svg' violates")
    page = offline_page
    page.goto("/redoc")
    page.get_by_text("/api/v1b/get_token").first.wait_for(state="attached", timeout=60_000)
    assert page.locator("[role=menuitem]").count() > 20
    # ReDoc's own styles (its <style> elements, allowed by the nonce) applied: the menu is
    # the fixed side bar, not unstyled text above the content.
    sidebar = page.locator(".menu-content").first
    assert sidebar.evaluate("e => getComputedStyle(e).position") in ("sticky", "fixed")
    # Search runs in ReDoc's worker (started from a blob: URL, which the page allows).
    page.fill("input[placeholder='Search...']", "token")
    page.get_by_text("Log in: email + password").first.wait_for()
    shot(page, "docs-redoc")
    assert page.foreign == []
