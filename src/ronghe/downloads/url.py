"""A model file at an http(s) URL: its name, size and, where it can be known, SHA-256.

The name comes from ``Content-Disposition`` (Civitai sends it), else the last part of the
URL's path after redirects.  Civitai download links (``/api/download/models/<version id>``)
are also looked up in Civitai's API on the same host (``/api/v1/model-versions/<id>``),
which gives the file's SHA-256, its format, what kind of model it is (checkpoint, LoRA,
upscaler) and its base model (the family).  Some Civitai downloads need an API key:
``CIVITAI_TOKEN`` is sent when it is set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from email.message import Message
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import structlog

from ronghe.downloads.errors import AccessRefused, PullError
from ronghe.downloads.remote import probe, total_size

log = structlog.get_logger(__name__)

_CIVITAI_DOWNLOAD = re.compile(r"^/api/download/models/(\d+)")
# Civitai's baseModel values -> family ids (engines/diffusion/families.py).
CIVITAI_FAMILIES = {"SD 1.4": "sd15", "SD 1.5": "sd15", "SD 1.5 LCM": "sd15",
                    "SD 1.5 Hyper": "sd15", "SD 2.0": "sd2", "SD 2.1": "sd2",
                    "SDXL 1.0": "sdxl", "SDXL Turbo": "sdxl", "SDXL Lightning": "sdxl",
                    "SDXL Hyper": "sdxl", "Pony": "sdxl", "Illustrious": "sdxl",
                    "NoobAI": "sdxl", "Flux.1 D": "flux", "Flux.1 S": "flux",
                    "SD 3": "sd3", "SD 3.5": "sd3", "SD 3.5 Medium": "sd3",
                    "SD 3.5 Large": "sd3", "SD 3.5 Large Turbo": "sd3",
                    "ZImageTurbo": "zimage", "Flux.2 Klein": "flux2"}
CIVITAI_KINDS = {"Checkpoint": "image", "LORA": "lora", "LoCon": "lora", "DoRA": "lora",
                 "Upscaler": "upscaler"}


@dataclass(frozen=True)
class UrlFile:
    url: str
    filename: str
    size: int | None
    sha256: str | None
    # From Civitai's metadata, when it was there.
    kind: str | None = None
    family: str | None = None
    description: str = ""
    headers: dict[str, str] | None = None


def is_url(ref: str) -> bool:
    parts = urlsplit(ref)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def civitai_version(url: str) -> int | None:
    match = _CIVITAI_DOWNLOAD.match(urlsplit(url).path)
    return int(match.group(1)) if match else None


def auth_headers(url: str) -> dict[str, str]:
    token = os.environ.get("CIVITAI_TOKEN", "")
    return {"Authorization": f"Bearer {token}"} if token and civitai_version(url) else {}


def _filename(response: httpx.Response) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
        if name:
            return PurePosixPath(name.replace("\\", "/")).name
    return PurePosixPath(unquote(urlsplit(str(response.url)).path)).name


def civitai_meta(http: httpx.Client, url: str, version: int) -> dict[str, Any] | None:
    """The model version's record from Civitai's API on the link's host; None when it
    cannot be had (the download still works, only without its hash)."""
    parts = urlsplit(url)
    api = f"{parts.scheme}://{parts.netloc}/api/v1/model-versions/{version}"
    try:
        response = http.get(api, headers=auth_headers(url))
        if response.status_code == 200:
            data = response.json()
            return data if isinstance(data, dict) else None
        log.info("no Civitai metadata", url=api, status=response.status_code)
    except (httpx.HTTPError, ValueError) as exc:
        log.info("no Civitai metadata", url=api, error=str(exc))
    return None


def _civitai_file(meta: dict[str, Any], filename: str) -> dict[str, Any] | None:
    files = [f for f in meta.get("files") or [] if isinstance(f, dict)]
    return (next((f for f in files if f.get("name") == filename), None)
            or next((f for f in files if f.get("primary")), None)
            or (files[0] if len(files) == 1 else None))


def resolve(http: httpx.Client, url: str, sha256: str | None) -> UrlFile:
    headers = auth_headers(url)
    with probe(http, url, headers) as response:
        status = response.status_code
        filename, size = _filename(response), total_size(response)
    if status in (401, 403):
        hint = (" (Civitai: this download needs an API key: set CIVITAI_TOKEN)"
                if civitai_version(url) else "")
        raise AccessRefused(f"{urlsplit(url).netloc} refused the download (HTTP {status})"
                            + hint)
    if status >= 400:
        raise PullError(f"{url} answered HTTP {status}", keep_partial=False)
    kind = family = None
    description = ""
    version = civitai_version(url)
    meta = civitai_meta(http, url, version) if version is not None else None
    if meta is not None:
        record = _civitai_file(meta, filename) or {}
        hashes = record.get("hashes") or {}
        sha256 = sha256 or (str(hashes["SHA256"]).lower() if hashes.get("SHA256") else None)
        filename = filename or str(record.get("name") or "")
        model = meta.get("model") or {}
        kind = CIVITAI_KINDS.get(str(model.get("type") or ""))
        family = CIVITAI_FAMILIES.get(str(meta.get("baseModel") or ""))
        description = " ".join(str(x) for x in (model.get("name"), meta.get("name")) if x)
    return UrlFile(url, filename, size, sha256, kind, family, description, headers)
