"""Serves the web app (``ronghe/web/static``) at ``/``, with the headers that keep it safe.

- ``GET /`` and any other unknown ``GET`` path outside the APIs whose last segment has no
  dot (client-side routes) answer ``index.html``; ``/static/<path>`` serves the app's files.
- Every answer carries a Content-Security-Policy without ``unsafe-inline``/``unsafe-eval``
  (scripts only from this origin), ``nosniff``, no referrer, and no framing.  Images may also
  come from the storage's own origin when it signs URLs itself (S3) or from
  ``public_base_url``, since those are where the app's image URLs point.
- ``Cache-Control: no-cache``: the files keep their names across upgrades, so browsers
  revalidate (a cheap 304 by ETag) instead of running a stale app against a newer API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ronghe.services import Services

STATIC_DIR = Path(__file__).resolve().parents[1] / "web" / "static"
# Paths that belong to an API (or the app's own files): never answered with index.html.
RESERVED = ("/api/", "/v1/", "/nlp/", "/test/", "/files/", "/static/", "/healthz", "/readyz",
            "/metrics", "/docs", "/redoc", "/openapi.json")
PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ronghe</title></head>
<body><h1>Ronghe</h1><p>The API is running. The web app's files are not installed
(expected in <code>ronghe/web/static/</code>). See <a href="/docs">/docs</a>.</p></body></html>
"""


def origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def image_origins(services: Services) -> list[str]:
    """Where the app's image URLs may point besides this origin."""
    found = [origin(services.settings.public_base_url)]
    # Presigning is a local computation (no request is made); it tells the store's origin.
    found.append(origin(services.files.storage.presigned_url("csp-probe", 60, "image/jpeg")))
    return sorted({o for o in found if o})


def security_headers(extra_origins: list[str]) -> dict[str, str]:
    extra = "".join(f" {o}" for o in extra_origins)
    csp = ("default-src 'self'; script-src 'self'; style-src 'self'; "
           f"img-src 'self' blob: data:{extra}; connect-src 'self'{extra}; font-src 'self'; "
           "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin", "Cache-Control": "no-cache"}


class AppFiles(StaticFiles):
    """StaticFiles (ETag, 304, HEAD, no path traversal) with the app's headers, and one
    JavaScript type everywhere (some systems' mime tables say text/plain, which browsers
    refuse for module scripts under nosniff)."""

    def __init__(self, directory: Path, headers: dict[str, str]) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.extra_headers = headers

    def file_response(self, full_path: str | os.PathLike[str], *args: Any,
                      **kwargs: Any) -> Response:
        response = super().file_response(full_path, *args, **kwargs)
        if str(full_path).endswith((".js", ".mjs")):
            response.headers["content-type"] = "text/javascript; charset=utf-8"
        response.headers.update(self.extra_headers)
        return response


def is_app_route(path: str) -> bool:
    return not path.startswith(RESERVED) and "." not in path.rsplit("/", 1)[-1]


def install(app: FastAPI, services: Services, static_dir: Path | None = None) -> None:
    static_dir = static_dir or STATIC_DIR
    headers = security_headers(image_origins(services))
    index = static_dir / "index.html"

    def index_response() -> Response:
        if index.is_file():
            return FileResponse(index, media_type="text/html; charset=utf-8", headers=headers)
        return HTMLResponse(PLACEHOLDER, headers=headers)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def root() -> Response:
        return index_response()

    if static_dir.is_dir():
        app.mount("/static", AppFiles(static_dir, headers), name="static")

    not_found = app.router.default

    async def client_routes(scope: Scope, receive: Receive, send: Send) -> None:
        # Only paths no route matched get here (a wrong method still answers 405).
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
                and is_app_route(scope["path"])):
            await index_response()(scope, receive, send)
            return
        await not_found(scope, receive, send)

    app.router.default = client_routes
