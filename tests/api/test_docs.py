"""/docs and /redoc (issue 26, item 7): served from the package, not a CDN, under the web
app's Content-Security-Policy; /openapi.json as before.  The pages rendering in a browser
offline: tests/web/test_docs.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ronghe.api.docs import REDOC_STYLE_HASHES
from ronghe.settings import Settings
from tests.conftest import make_settings

PAGES = ["/docs", "/redoc"]
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", chat_models=[])


class Refs(HTMLParser):
    """Every URL a page loads (script src, link href, img src) and inline scripts/styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.nonces: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(values[name] or "")
        if values.get("nonce"):
            self.nonces.append(values["nonce"] or "")
        self._in = tag if tag in ("script", "style") and not values.get("src") else None

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline.append(f"<{self._in}>{data.strip()[:80]}")

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def refs(html: str) -> Refs:
    parser = Refs()
    parser.feed(html)
    return parser


def csp_of(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d for d in (p.strip() for p in policy.split(";")) if d}


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_only_same_origin_files_under_a_strict_csp(client: TestClient,
                                                              path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = refs(response.text)
    assert page.inline == []  # no inline script or style for the CSP to allow
    assert page.urls and all(u.startswith("/docs/static/") for u in page.urls), page.urls
    assert not re.search(r"https?://", response.text)
    policy = csp_of(response)
    assert policy["script-src"] == "script-src 'self'"
    assert policy["default-src"] == "default-src 'self'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    for url in page.urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = Path(url).suffix
        assert asset.headers["content-type"].startswith(TYPES[suffix]), url
        assert "content-security-policy" in asset.headers and asset.headers["etag"]
        assert client.get(url, headers={"If-None-Match": asset.headers["etag"]}
                          ).status_code == 304
    assert client.head(path).status_code == 200


def test_the_pages_start_their_ui_from_files(client: TestClient) -> None:
    swagger = refs(client.get("/docs").text).urls
    assert "/docs/static/swagger-ui-bundle.js" in swagger
    assert "/docs/static/swagger-ui.css" in swagger
    assert "/docs/static/swagger-init.js" in swagger
    init = client.get("/docs/static/swagger-init.js").text
    assert "SwaggerUIBundle(" in init and "validatorUrl: null" in init
    redoc = refs(client.get("/redoc").text).urls
    assert {"/docs/static/redoc.standalone.js", "/docs/static/redoc-init.js"} <= set(redoc)


def test_redoc_styles_are_allowed_by_a_fresh_nonce_or_a_fixed_hash(client: TestClient) -> None:
    """ReDoc writes <style> elements: the page allows those with a nonce it hands to ReDoc's
    start-up script, new on every answer, or the hashes of the one stylesheet the bundle
    injects before that; its search worker starts from a blob: URL.  /docs needs none of it."""
    first, second = client.get("/redoc"), client.get("/redoc")
    nonces = [refs(r.text).nonces for r in (first, second)]
    assert len(nonces[0]) == 1 and len(nonces[1]) == 1 and nonces[0] != nonces[1]
    policy = csp_of(first)
    assert policy["style-src"] == " ".join(
        ["style-src 'self'", f"'nonce-{nonces[0][0]}'", *REDOC_STYLE_HASHES])
    assert policy["worker-src"] == "worker-src 'self' blob:"
    assert policy["script-src"] == "script-src 'self'"
    docs = csp_of(client.get("/docs"))
    assert docs["style-src"] == "style-src 'self'" and "worker-src" not in docs


def test_openapi_json_is_unchanged_and_fastapis_cdn_pages_are_gone(client: TestClient) -> None:
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "Ronghe"
    assert "/docs" not in schema.json()["paths"] and "/redoc" not in schema.json()["paths"]
    assert "cdn.jsdelivr.net" not in client.get("/docs").text
    for missing in ("/docs/static/nope.js", "/docs/static/../../app.py",
                    "/docs/oauth2-redirect"):
        assert client.get(missing).status_code == 404, missing
