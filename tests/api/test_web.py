"""The web app's files over HTTP: index and client routes, static files, security headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from ronghe.api import web
from ronghe.app import create_app
from tests.conftest import make_settings

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")


@pytest.fixture
def static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>app</title>"
                                     '<script type="module" src="/static/js/app.js"></script>')
    (root / "js" / "app.js").write_text("export const x = 1;\n")
    (root / "app.css").write_text("body { margin: 0 }\n")
    (tmp_path / "secret.txt").write_text("not for the web")
    monkeypatch.setattr(web, "STATIC_DIR", root)
    return root


@pytest.fixture
def site(static: Path, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path / "data")),
                    raise_server_exceptions=False) as client:
        yield client


def assert_safe(response) -> None:  # type: ignore[no-untyped-def]
    headers = response.headers
    assert headers["content-security-policy"] == CSP
    assert "unsafe" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-cache"


def test_index_and_client_routes(site: TestClient) -> None:
    for path in ("/", "/gallery", "/tasks/123/edit"):
        r = site.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.text.startswith("<!doctype html><title>app</title>")
        assert_safe(r)
    for path in ("/", "/gallery"):
        head = site.head(path)
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"]
    # Paths of files and of the APIs keep their own answers.
    assert site.get("/favicon.ico").status_code == 404
    r = site.get("/api/v1b/nothing")
    assert r.status_code == 404 and r.json() == {
        "code": 404, "info": None, "msg": "no such endpoint: GET /api/v1b/nothing"}
    assert site.get("/api/v1b/get_token").json()["code"] == 405
    assert site.get("/v1/nothing").json()["error"]["code"] == 404
    assert site.post("/gallery", json={}).status_code == 404
    assert site.get("/healthz").json()["status"] == "ok"


def test_static_files_types_revalidation_and_containment(site: TestClient) -> None:
    r = site.get("/static/js/app.js")
    assert r.status_code == 200 and r.text == "export const x = 1;\n"
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert_safe(r)
    again = site.get("/static/js/app.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert site.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert site.get("/static/missing.js").status_code == 404
    for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt",
                 "/static/js/../../secret.txt"):
        r = site.get(path)
        assert "not for the web" not in r.text, path


def test_a_placeholder_page_without_the_apps_files(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "STATIC_DIR", tmp_path / "absent")
    with TestClient(create_app(make_settings(tmp_path / "data")),
                    raise_server_exceptions=False) as client:
        r = client.get("/")
        assert r.status_code == 200 and "The API is running" in r.text
        assert_safe(r)
        assert client.get("/static/app.js").status_code == 404


def test_the_packaged_app_is_served(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert_safe(r)


def test_images_from_the_object_store_are_allowed(tmp_path: Path, static: Path,
                                                  s3_endpoint: str) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test").create_bucket(
        Bucket="web-csp")
    settings = make_settings(tmp_path / "data", storage_url="s3://web-csp/x",
                             s3_endpoint_url=s3_endpoint, s3_region="us-east-1",
                             s3_access_key_id="test", s3_secret_access_key="test",
                             public_base_url="https://ronghe.example.com/")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        info = services.files.save(_user(services), b"\xff\xd8", "image/jpeg",
                                   "image")
        url = services.files.url(info, "http://testserver/")
        csp = client.get("/").headers["content-security-policy"]
        img_src = next(d for d in csp.split("; ") if d.startswith("img-src")).split()
        assert web.origin(url) == s3_endpoint and s3_endpoint in img_src
        assert "https://ronghe.example.com" in img_src
        assert "unsafe" not in csp


def _user(services) -> int:  # type: ignore[no-untyped-def]
    return services.auth.add_user("s3@example.com", "longenough").id
