"""Requests that once crashed the server (issue 12, item 4) answer 400, and an unexpected
error is logged once, not twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient

from ronghe.app import create_app
from ronghe.logs import configure
from tests.chat_support import LiveServer
from tests.conftest import make_settings


@pytest.mark.parametrize("signature", ["%C3%A9", "%E4%B8%AD" * 3, "ab%00cd", "a+b/c="])
def test_a_malformed_file_signature_is_a_400_naming_the_field(client: TestClient,
                                                               signature: str) -> None:
    r = client.get(f"/files/x?Expires=1&Signature={signature}")
    assert r.status_code == 400, r.text
    assert r.json()["msg"].startswith("Signature:")


def test_a_wrong_ascii_signature_is_still_a_403(client: TestClient) -> None:
    r = client.get("/files/x?Expires=99999999999&Signature=abc")
    assert r.status_code == 403 and "bad signature" in r.json()["msg"]


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_an_unexpected_error_is_logged_once(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                            restore_logging: None) -> None:
    configure("info")
    app = create_app(make_settings(tmp_path / "data"))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom-marker")

    with LiveServer(app) as server:
        capfd.readouterr()
        r = httpx.get(f"{server.url}/boom", timeout=10)
        assert r.status_code == 500
        assert r.json() == {"code": 500, "msg": "internal error; see the server log for details"}
        assert r.headers["x-request-id"]
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    out = "".join(capfd.readouterr())
    assert out.count("Traceback (most recent call last)") == 1, out
    assert out.count("RuntimeError: kaboom-marker") == 1, out
