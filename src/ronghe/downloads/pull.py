"""``pull``: from a catalogue name, a Hub repo id or a URL to a model in the models folder.

The steps, the same for the CLI and the server's ``download`` task:

1. resolve what to fetch (``hub``, ``url``, the catalogue), with sizes and SHA-256s;
2. check the free disk space for what is still missing;
3. download every file into ``<data_dir>/downloads/<key>/`` (``remote.fetch``: resumable;
   the key is the request's, so the same pull again finds its partial files), then check
   each one's size and SHA-256, and that weights are what their names say (safetensors or
   GGUF, not a pickle in disguise);
4. write the model's sidecar (family, recommended settings, where it came from) and move
   it into ``models/``, ``loras/`` or ``models/upscalers/`` in one rename, so the models
   folder never holds half a model;
5. the caller rescans the folder, and every process serves the model without a restart.

A pull that stops (Ctrl-C, a dropped connection, a stopping server, a full disk) keeps its
partial files for the next try; one that fails a check removes them.  A lock file keeps two
processes from filling the same staging folder at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from ronghe.downloads import catalogue, hub, install, remote, url
from ronghe.downloads.errors import (
    AccessRefused,
    BadReference,
    Mismatch,
    NoSpace,
    PickleRefused,
    PullError,
)
from ronghe.downloads.install import Places
from ronghe.downloads.progress import (
    DONE,
    DOWNLOADING,
    INSTALLING,
    RESOLVING,
    VERIFYING,
    Meter,
    Progress,
    Reporter,
)

FILES = "files"
# Room kept free beside a download, so a pull never fills the disk to the last byte.
RESERVE_BYTES = 64 * 1024 * 1024
MAX_NAME = 128
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
WEIGHTS = (".safetensors", ".gguf", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class PullRequest:
    """What to pull, as the CLI's options and the admin endpoint's fields say it."""

    ref: str
    revision: str | None = None
    file: str | None = None
    name: str | None = None
    kind: str | None = None
    sha256: str | None = None
    allow_pickle: bool = False

    @property
    def source(self) -> str:
        """catalogue, hub or url."""
        if url.is_url(self.ref):
            return "url"
        return "catalogue" if catalogue.find(self.ref) else "hub"

    def check(self) -> PullRequest:
        """The request's own mistakes, each naming its field; returns it tidied."""
        ref = self.ref.strip()
        if not ref:
            raise BadReference("ref: give a catalogue name (ronghe models pull --list), a "
                               "Hub repo id (org/name) or an https:// URL", field="ref")
        if not (url.is_url(ref) or catalogue.find(ref) or hub.is_repo_id(ref)):
            raise BadReference(f"ref: {ref[:200]!r} is not a catalogue name (see --list), a "
                               "Hub repo id (org/name) or an http(s):// URL", field="ref")
        if self.kind is not None and self.kind not in catalogue.KINDS:
            raise BadReference(f"kind: must be one of {', '.join(catalogue.KINDS)} "
                               f"(got {self.kind!r})", field="kind")
        if self.sha256 is not None and not SHA256.match(self.sha256):
            raise BadReference("sha256: must be 64 hexadecimal digits", field="sha256")
        if self.name is not None:
            check_name(self.name)
        if url.is_url(ref) and (self.revision or self.file):
            raise BadReference("revision and file are for Hub repos, not URLs",
                               field="revision" if self.revision else "file")
        if self.sha256 and not url.is_url(ref) and not self.file:
            raise BadReference("sha256: checks one file: a URL, or a Hub repo with file",
                               field="sha256")
        return PullRequest(ref, self.revision or None, self.file or None, self.name,
                           self.kind, self.sha256.lower() if self.sha256 else None,
                           self.allow_pickle)

    def key(self) -> str:
        """The staging folder's name: the same request resumes in the same folder."""
        basis = json.dumps([self.ref, self.revision, self.file, self.name, self.kind])
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", self.name or self.ref.rsplit("/", 1)[-1])
        digest = hashlib.sha256(basis.encode()).hexdigest()[:12]
        return f"{stem[:40].strip('-.') or 'pull'}-{digest}"

    def to_params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PullRequest:
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})


def check_name(name: str) -> str:
    if (not name or "/" in name or "\\" in name or name.startswith(".")
            or len(name) > MAX_NAME or name.strip() != name):
        raise BadReference(f"name: 1-{MAX_NAME} characters, no '/', not starting with '.' "
                           f"(got {name[:200]!r})", field="name")
    return name


@dataclass(frozen=True)
class HubAccess:
    token: str | None = None
    endpoint: str | None = None


@dataclass
class Plan:
    """A resolved pull: the files to fetch and what the result is."""

    name: str
    files: list[remote.RemoteFile]
    folder: bool
    kind: str | None
    family: str | None = None
    description: str = ""
    recommended: dict[str, Any] | None = None
    licence: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    # A URL whose name says no format: the file's first bytes tell its suffix.
    sniff: bool = False

    @property
    def total(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)


@dataclass(frozen=True)
class Installed:
    name: str
    kind: str
    family: str | None
    path: str
    bytes: int
    # Why the models folder cannot use it (a family it cannot tell ...); None: it can.
    problem: str | None = None
    # True: the same pull had installed it before; nothing was downloaded.
    already: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


class Puller:
    def __init__(self, places: Places, reporter: Reporter, access: HubAccess | None = None,
                 http: httpx.Client | None = None) -> None:
        self.places = places
        self.reporter = reporter
        self.access = access or HubAccess()
        self.http = http or remote.client()

    def close(self) -> None:
        self.http.close()

    # --- 1. what to fetch

    def resolve(self, request: PullRequest) -> Plan:
        self.reporter.update(Progress(RESOLVING, name=request.name or ""))
        if request.source == "url":
            return self._resolve_url(request)
        entry = catalogue.find(request.ref)
        repo_id = entry.repo if entry else request.ref
        endpoint = hub.endpoint_of(self.access.endpoint)
        token = hub.token_of(self.access.token)
        revision = request.revision or (entry.revision if entry else "main")
        info = hub.repo_info(repo_id, revision, token, endpoint)
        if info.gated and not token:
            raise AccessRefused(hub.licence_hint(repo_id, endpoint, info.licence))
        patterns = entry.files if entry and not request.file else None
        chosen = hub.choose(info, request.file, patterns, request.allow_pickle)
        files = hub.remote_files(info, chosen, token, endpoint)
        folder = any(f.path == "model_index.json" for f in chosen)
        if request.sha256 and len(files) == 1:
            files = [remote.RemoteFile(files[0].url, files[0].path, files[0].size,
                                       request.sha256, files[0].headers,
                                       files[0].access_hint)]
        if folder:
            name = request.name or (entry.name if entry else repo_id.split("/")[1])
        else:
            name = request.name or (entry.name if entry else PurePosixPath(chosen[0].path).stem)
        licence = ({"name": entry.licence, "url": entry.licence_url} if entry
                   else {"name": info.licence, "url": f"{endpoint}/{repo_id}"})
        return Plan(
            check_name(name), files, folder, request.kind or (entry.kind if entry else None),
            entry.family if entry else None, entry.description if entry else "",
            entry.recommended.sidecar() if entry and entry.recommended else None, licence,
            {"ref": request.ref, "repo": repo_id, "revision": info.commit,
             "files": {f.path: f.sha256 for f in files}})

    def _resolve_url(self, request: PullRequest) -> Plan:
        found = url.resolve(self.http, request.ref, request.sha256)
        filename = found.filename or "model"
        suffix = _suffix(filename)
        if suffix not in WEIGHTS:
            suffix = ""  # told by the file's first bytes once it is here
        name = request.name or (PurePosixPath(filename).stem if suffix else filename)
        if suffix in hub.PICKLE_SUFFIXES and not request.allow_pickle:
            raise PickleRefused(f"{filename} is a pickle file, which can run code when "
                                "loaded; pass --allow-pickle if you trust where it comes from")
        files = [remote.RemoteFile(found.url, check_name(name) + (suffix or ".download"),
                                   found.size, found.sha256, found.headers or {})]
        return Plan(name, files, False, request.kind or found.kind, found.family,
                    found.description, None, {},
                    {"ref": request.ref, "url": found.url, "sha256": found.sha256},
                    sniff=not suffix)

    # --- 2-5

    def pull(self, request: PullRequest, rescan: Callable[[], Any] | None = None) -> Installed:
        request = request.check()
        plan = self.resolve(request)
        existing = self._existing(plan)
        if existing is not None:
            return existing
        staging = self.places.staging / request.key()
        with self._locked(staging):
            try:
                installed = self._pull(request, plan, staging)
            except PullError as exc:
                if not exc.keep_partial:
                    shutil.rmtree(staging, ignore_errors=True)
                raise
        shutil.rmtree(staging, ignore_errors=True)
        if rescan is not None:
            rescan()
        self.reporter.update(Progress(DONE, name=installed.name, bytes_done=installed.bytes,
                                      bytes_total=installed.bytes))
        return installed

    def _pull(self, request: PullRequest, plan: Plan, staging: Path) -> Installed:
        tree = staging / FILES
        self._check_space(plan, tree)
        self._download(plan, tree)
        paths = [tree / f.path for f in plan.files]
        if plan.sniff:
            paths = [install.named_by_content(paths[0])]
        for path in paths:
            install.check_format(path, request.allow_pickle)
        self.reporter.update(Progress(INSTALLING, name=plan.name))
        if plan.folder:
            renamed = hub.drop_variants(tree)
            if renamed:
                self.reporter.note(f"installed the fp16 weights under the plain names "
                                   f"({len(renamed)} files)")
            source, kind = tree, plan.kind or "image"
            target = self.places.root(kind) / plan.name
        else:
            source = paths[0]
            kind = plan.kind or install.kind_of(source)
            target = self.places.root(kind) / (plan.name + source.suffix.lower())
        if target.exists() or target.is_symlink():
            raise PullError(f"{target} exists already: remove it (ronghe models rm "
                            f"{plan.name}) or choose another name", field="name")
        family = plan.family if kind in ("image", "lora") else None
        install.write_sidecar(source, family, plan.recommended, plan.description,
                              plan.licence, plan.source)
        install.move_into_place(source, target)
        family, problem = install.inspect(target, kind, family)
        return Installed(plan.name, kind, family, str(target), install.size_of(target), problem)

    def _existing(self, plan: Plan) -> Installed | None:
        """The same pull installed before: nothing to do.  Another model of that name: a
        clear refusal before anything is downloaded."""
        suffix = "" if plan.folder else _suffix(plan.files[0].path)
        kinds = [plan.kind] if plan.kind else ["image", "chat", "lora", "upscaler"]
        for kind in kinds:
            target = self.places.root(kind) / (plan.name + suffix)
            if not (target.exists() or target.is_symlink()):
                continue
            meta = install.read_sidecar(target)
            if meta.get("source", {}).get("ref") == plan.source.get("ref"):
                self.reporter.note(f"{plan.name} is installed already at {target}")
                return Installed(plan.name, kind, meta.get("family"), str(target),
                                 install.size_of(target), already=True)
            raise PullError(f"{target} exists already: remove it (ronghe models rm "
                            f"{plan.name}) or choose another name", field="name",
                            keep_partial=False)
        return None

    @contextlib.contextmanager
    def _locked(self, staging: Path) -> Iterator[None]:
        staging.mkdir(parents=True, exist_ok=True)
        with (staging / ".lock").open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PullError("this model is being downloaded by another process (a "
                                "running server or another ronghe models pull)",
                                keep_partial=True) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _check_space(self, plan: Plan, tree: Path) -> None:
        if plan.total is None:
            return
        tree.mkdir(parents=True, exist_ok=True)
        have = sum(remote.partial_bytes(tree / f.path) for f in plan.files)
        missing = max(0, plan.total - have)
        _require_space(tree, missing, "the download")
        root = self.places.root(plan.kind or "image")
        root.mkdir(parents=True, exist_ok=True)
        if os.stat(root).st_dev != os.stat(tree).st_dev:
            _require_space(root, plan.total, "the model (its folder is on another disk)")

    def _download(self, plan: Plan, tree: Path) -> None:
        total = plan.total
        done = sum(remote.partial_bytes(tree / f.path) for f in plan.files)
        if done:
            self.reporter.note(f"resuming: {done / 1e6:.1f} MB already here")
        meter = Meter()
        meter.add(done)
        count = len(plan.files)
        for index, remote_file in enumerate(plan.files):
            target = _inside(tree, remote_file.path)
            if target.is_file():  # fetched and checked by an earlier try
                continue

            def on_bytes(n: int, name: str = remote_file.path, index: int = index) -> None:
                nonlocal done
                done += n
                meter.add(done)
                self.reporter.update(Progress(
                    DOWNLOADING, plan.name, name, index, count, done, total, meter.speed(),
                    meter.eta(done, total)))

            on_bytes(0)
            size = remote.fetch(self.http, remote_file, target, on_bytes)
            part, meta = remote.part_paths(target)
            self._verify(remote_file, part, size, plan.name, index, count)
            os.replace(part, target)
            meta.unlink(missing_ok=True)

    def _verify(self, remote_file: remote.RemoteFile, part: Path, size: int, name: str,
                index: int, count: int) -> None:
        if remote_file.size is not None and size != remote_file.size:
            part.unlink(missing_ok=True)
            raise Mismatch(f"{remote_file.path}: {size} bytes arrived, {remote_file.size} "
                           "were published; nothing was installed, pull again")
        if remote_file.sha256 is None:
            return
        digest = hashlib.sha256()
        checked = 0
        with part.open("rb") as fh:
            while chunk := fh.read(remote.CHUNK * 8):
                digest.update(chunk)
                checked += len(chunk)
                self.reporter.update(Progress(VERIFYING, name, remote_file.path, index, count,
                                              checked, size))
        if digest.hexdigest() != remote_file.sha256.lower():
            part.unlink(missing_ok=True)
            raise Mismatch(f"{remote_file.path}: its SHA-256 is {digest.hexdigest()}, not the "
                           f"published {remote_file.sha256.lower()}; the file was deleted and "
                           "nothing was installed")


def _inside(tree: Path, path: str) -> Path:
    """``tree / path``, refusing a path that would leave the staging tree (a repo listing or
    a mirror that names ``../`` or an absolute path)."""
    target = (tree / path).resolve()
    if PurePosixPath(path).is_absolute() or not target.is_relative_to(tree.resolve()):
        raise PullError(f"refusing the file {path!r}: its path leaves the download folder",
                        keep_partial=False)
    return target


def _require_space(where: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(where).free
    if needed + RESERVE_BYTES > free:
        raise NoSpace(f"not enough free disk space in {where}: {what} needs "
                      f"{needed / 1e9:.2f} GB more and {free / 1e9:.2f} GB is free")


