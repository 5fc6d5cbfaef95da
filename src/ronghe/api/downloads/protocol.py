"""Request bodies and answers of the admin's model-pull endpoints, with every field's range."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ronghe.api.envelopes import Body
from ronghe.api.fields import choice, int_range, text
from ronghe.api.images.protocol import Flag, Lenient
from ronghe.downloads.catalogue import KINDS


class PullBody(Lenient):
    ref: Annotated[str, text(2048, at_least=1, strip=True)] = Field(
        description="a catalogue name (see /admin/models/catalogue), a Hugging Face repo id "
        "(org/name) or an http(s) URL of a model file")
    revision: Annotated[str, text(256, strip=True)] = Field(
        default="", description="Hub repos: a branch, tag or commit ('' = main)")
    file: Annotated[str, text(1024, strip=True)] = Field(
        default="", description="Hub repos: pull this one file of the repo")
    name: Annotated[str, text(128, strip=True)] = Field(
        default="", description="serve it under this name ('' = from the ref)")
    kind: Annotated[str, choice(KINDS, empty_ok=True)] = Field(
        default="", description="'' = told from the files")
    sha256: Annotated[str, text(64, strip=True)] = Field(
        default="", description="the file's SHA-256, checked after the download")
    allow_pickle: Flag = Field(default=False, description="allow .ckpt/.pt/.bin pickle "
                               "files, which can run code when loaded")


class PullRef(Lenient):
    task_id: Annotated[str, text(64, at_least=1, strip=True)]


class PullList(Lenient):
    limit: Annotated[int, int_range(1, 100)] = 20


class PullInfo(Body):
    task_id: str
    state: str = Field(description="pending, running, done, failed or cancelled")
    progress: float = Field(description="0-1: bytes downloaded of the whole")
    ref: str
    name: str = Field(description="the model's name once known ('' before)")
    email: str = Field(description="the admin who started it")
    phase: str = Field(description="resolving, downloading, verifying, installing, done")
    file: str = Field(description="the file being fetched or checked")
    bytes_done: int
    bytes_total: int | None = Field(description="null while unknown")
    speed: float | None = Field(description="bytes per second, recently")
    eta_seconds: float | None
    notes: list[str]
    error_msg: str
    result: dict[str, Any] | None = Field(
        description="when done: name, kind, family, path, bytes, problem, already")
    create_time: str


class PullItems(Body):
    items: list[PullInfo]


class CatalogueItem(Body):
    name: str
    title: str
    kind: str
    family: str | None
    repo: str
    files: list[str]
    size_gb: float
    vram_gb: float | None
    licence: str
    licence_url: str
    gated: bool = Field(description="accept the licence on the Hub and set a token first")
    description: str
    recommended: dict[str, Any] | None
    installed: bool
    installed_bytes: int | None = Field(description="its size on disk, when installed")


class CatalogueItems(Body):
    items: list[CatalogueItem]
