"""Browser tests: a real ``ronghe serve`` subprocess driven by Debian's Chromium through
Playwright.  One server per module (``web_server``), one browser per session.

With ``RONGHE_SCREENSHOTS=1`` the tests also save screenshots of each page to docs/img/
(CI leaves it unset, so its tree stays clean)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, DemoModel, free_port, wait_healthy

CHROMIUM = Path(os.environ.get("RONGHE_TEST_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SCREENSHOTS = os.environ.get("RONGHE_SCREENSHOTS") == "1"


@dataclass
class WebServer:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]


def start_server(data_dir: Path, model: DemoModel, users: list[str],
                 **env_extra: str) -> tuple[WebServer, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    if users:
        from ronghe.db.migrate import upgrade
        from ronghe.services import Services
        from tests.conftest import make_settings

        services = Services.build(make_settings(data_dir))
        upgrade(services.db.engine)
        for email in users:
            services.auth.add_user(email, PASSWORD)
        services.close()
    port = free_port()
    env = {**os.environ, "RONGHE_DATA_DIR": str(data_dir), "RONGHE_CPU_THREADS": "1",
           "RONGHE_LOGIN_DELAY_SECONDS": "0",
           "RONGHE_IMAGE_MODELS": json.dumps([model.spec()]), "HF_HUB_OFFLINE": "1",
           **env_extra}
    log_path = data_dir / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_healthy(port, proc, 120, log_path)
    return WebServer(f"http://127.0.0.1:{port}", data_dir, proc), log


def stop_server(server: WebServer, log: Any) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)
    log.close()


# Per module, not per session: Playwright's sync API runs an asyncio loop in this thread
# until it stops, and tests collected after tests/web (tests/webhooks …) that run their own
# loop would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is a test dependency (pip install -e '.[test]')")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of one page; ``allow`` takes regexes of
    messages a test provokes on purpose (a 401 for a wrong password is logged by Chromium)."""
    errors: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(pattern)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(re.search(p, e) for p in self.allowed)]


def open_page(browser: Any, base_url: str, console: Console, *, width: int = 1440,
              height: int = 900, locale: str = "en-US") -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                  base_url=base_url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("console", lambda m: console.errors.append(f"console.{m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: console.errors.append(f"pageerror: {e}"))
    page.on("dialog", lambda d: (console.errors.append(f"dialog: {d.message}"), d.dismiss()))
    return page


@pytest.fixture
def console() -> Iterator[Console]:
    c = Console()
    yield c
    assert not c.unexpected(), c.unexpected()


@pytest.fixture
def page(browser: Any, server: Any, console: Console) -> Iterator[Any]:
    """A fresh browser page on the module's own ``server`` fixture."""
    p = open_page(browser, server.url, console)
    yield p
    p.context.close()


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/")
    page.fill("input[type=email]", email)
    page.fill("input[type=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_selector("#sign-out")


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        import io

        from PIL import Image

        page.wait_for_timeout(300)  # let transitions settle
        # 256 colours keep the files small enough for the repository (a third the size).
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            DOCS_IMG / f"web-{name}.png", optimize=True)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)
