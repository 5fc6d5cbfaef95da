"""First run, accounts and settings in real Chromium, on a fresh install with no user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import DemoModel
from tests.web.conftest import (
    Console,
    WebServer,
    screenshot,
    sign_in,
    start_server,
    stop_server,
)

ADMIN, ADMIN_PW = "root@example.com", "first admin pw"
USER, USER_PW = "bea@example.com", "bea's password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    srv, log = start_server(tmp_path_factory.mktemp("web-accounts") / "data", demo_model, [],
                            RONGHE_ALLOW_SIGNUP="true")
    yield srv
    stop_server(srv, log)


def test_first_run_creates_the_admin_who_manages_accounts(page: Any, server: WebServer) -> None:
    page.goto("/")
    page.wait_for_selector("text=Create the first account")
    screenshot(page, "first-run")
    page.fill("input[type=email]", ADMIN)
    page.fill("input[type=password]", ADMIN_PW)
    page.click("form button[type=submit]")
    page.wait_for_selector("#sign-out")
    # Only while no user exists: the API refuses a second setup.
    again = httpx.post(server.url + "/api/v1b/setup", json={"email": "x@example.com",
                                                            "password": "another pw 1"})
    assert again.status_code == 409

    page.click("a[href='#/accounts']")
    page.fill("#new-user-email", USER)
    page.fill("#new-user-password", USER_PW)
    page.click("#add-user")
    row = page.locator(f"#users tr[data-user='{USER}']")
    row.wait_for()
    assert "Active" in row.inner_text()
    screenshot(page, "accounts")
    row.get_by_role("button", name="Disable").click()
    page.wait_for_function(f"() => document.querySelector(\"#users tr[data-user='{USER}']\")"
                           ".innerText.includes('Disabled')")
    row.get_by_role("button", name="Enable").click()
    page.wait_for_function(f"() => document.querySelector(\"#users tr[data-user='{USER}']\")"
                           ".innerText.includes('Active')")


def test_user_changes_password_and_creates_an_api_key(page: Any, console: Console,
                                                     server: WebServer) -> None:
    console.allow(r"status of 400")  # the wrong old password, on purpose
    sign_in(page, USER, USER_PW)
    assert page.locator("a[href='#/accounts']").count() == 0  # not an admin
    page.goto("/#/settings")
    page.fill("#old-password", "wrong one")
    page.fill("#new-password", "a new password")
    page.click("#change-password")
    error = page.locator("[data-field=old_password] .field-error")
    error.wait_for()
    assert "old_password" in error.inner_text()
    page.fill("#old-password", USER_PW)
    page.click("#change-password")
    page.wait_for_selector(".ok-text:not(:empty)")

    page.fill("#key-name", "laptop")
    page.click("#create-key")
    key = page.locator("#new-key").inner_text()
    assert key.startswith("rhk_")
    page.locator("#key-list .key-row").first.wait_for()
    assert key not in page.locator("#key-list").inner_text()  # only a prefix is listed
    screenshot(page, "settings")
    # The key works for chat; once revoked it does not.
    models = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert models.status_code == 200
    page.locator("#key-list .key-row button").first.click()
    page.wait_for_selector("#key-list li.muted")
    models = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert models.status_code == 401


def test_sign_up_when_the_server_allows_it(page: Any) -> None:
    page.goto("/")
    page.get_by_role("button", name="No account yet? Sign up").click()
    page.wait_for_selector("text=Create an account")
    page.fill("input[type=email]", "cy@example.com")
    page.fill("input[type=password]", "cy's own password")
    page.click("form button[type=submit]")
    page.wait_for_selector("#sign-out")
    assert page.locator(".user-chip").inner_text() == "cy@example.com"
    assert page.locator("a[href='#/accounts']").count() == 0
