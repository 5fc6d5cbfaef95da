"""The interactive API docs, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served whole from
this server: they work on a machine with no internet, and load no unpinned script from a CDN.

- The Swagger UI and ReDoc bundles come from the ``fastapi-offline`` package (its
  ``static/`` folder: swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js,
  favicon.png); the two small scripts that start them are ours (``ronghe/web/docs/``).  All
  are served under ``/docs/static/``.
- Every answer carries the web app's headers (``ronghe.api.web.security_headers``): scripts
  only from this origin, no inline script.  That is why the start-up code is a file and not
  the inline script FastAPI's own pages write.  ReDoc writes its styles into ``<style>``
  elements and builds its search index in a worker started from a blob: URL, so ``/redoc``
  alone also allows styles with a fresh nonce per answer (which the page hands to ReDoc) or
  two fixed hashes, and blob: workers; no ``unsafe-inline`` anywhere.  ReDoc's footer logo
  points at cdn.redoc.ly: the CSP blocks it (no request leaves) and ReDoc hides it.
- ``/openapi.json`` is FastAPI's own, unchanged.
"""

from __future__ import annotations

import html
import os
import secrets
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from ronghe.api import web
from ronghe.services import Services

ASSETS = "/docs/static"
# Searched in this order: the vendored bundles, then our start-up scripts.
PACKAGES = [("fastapi_offline", "static"), ("ronghe.web", "docs")]

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – Swagger UI</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – ReDoc</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<div id="redoc" data-openapi="{openapi}"></div>
<script src="{assets}/redoc.standalone.js"></script>
<script src="{assets}/redoc-init.js" nonce="{nonce}"></script>
</body>
</html>
"""


class DocsFiles(StaticFiles):
    """The docs' files from the two package folders, with the web app's headers (ETag, 304,
    HEAD and no path traversal come from StaticFiles)."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(packages=PACKAGES)
        self.extra_headers = headers

    def file_response(self, full_path: str | os.PathLike[str], *args: Any,
                      **kwargs: Any) -> Response:
        response = super().file_response(full_path, *args, **kwargs)
        if str(full_path).endswith(".js"):
            # One type everywhere: some systems' mime tables say text/plain, which browsers
            # refuse for scripts under nosniff.
            response.headers["content-type"] = "text/javascript; charset=utf-8"
        response.headers.update(self.extra_headers)
        return response


# The one stylesheet ReDoc's bundle injects before it is handed the nonce (perfect-scrollbar's,
# with its source map), empty and then filled: allowed by its hashes.  They belong to the
# pinned fastapi-offline's redoc.standalone.js; after an upgrade, tests/web/test_docs.py
# fails on the CSP violation, whose message gives the new hash.
REDOC_STYLE_HASHES = ("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
                      "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='")


def redoc_policy(headers: dict[str, str], nonce: str) -> dict[str, str]:
    """``headers`` whose CSP also lets ReDoc work: ``<style>`` elements with ``nonce`` (its
    styled components) or one of REDOC_STYLE_HASHES, and its search index's worker, which
    the bundle starts from a blob: URL (scripts still only from this origin)."""
    styles = " ".join((f"'nonce-{nonce}'", *REDOC_STYLE_HASHES))
    csp = headers["Content-Security-Policy"].replace(
        "style-src 'self'", f"style-src 'self' {styles}", 1)
    return {**headers, "Content-Security-Policy": f"{csp}; worker-src 'self' blob:"}


def install(app: FastAPI, services: Services) -> None:
    """Call with FastAPI's own pages off (``docs_url=None, redoc_url=None``)."""
    headers = web.security_headers(web.image_origins(services))
    app.mount(ASSETS, DocsFiles(headers), name="docs-static")

    def fill(page: str, request: Request, **extra: str) -> str:
        # Behind a proxy that mounts the app under a prefix, every URL carries it.
        root = request.scope.get("root_path", "").rstrip("/")
        values = {"title": app.title, "assets": root + ASSETS,
                  "openapi": root + (app.openapi_url or "/openapi.json"), **extra}
        return page.format(**{k: html.escape(v) for k, v in values.items()})

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    def swagger_ui(request: Request) -> Response:
        return HTMLResponse(fill(SWAGGER_PAGE, request), headers=headers)

    @app.api_route("/redoc", methods=["GET", "HEAD"], include_in_schema=False)
    def redoc(request: Request) -> Response:
        nonce = secrets.token_urlsafe(18)
        return HTMLResponse(fill(REDOC_PAGE, request, nonce=nonce),
                            headers=redoc_policy(headers, nonce))
