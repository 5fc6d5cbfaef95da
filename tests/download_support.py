"""A model server on 127.0.0.1 for pull tests: plain files with Range, Civitai-style links,
and a stand-in for the Hugging Face Hub.

No machine that runs the tests reaches the Hub or Civitai, so this small server replaces
them.  It answers only the routes a pull uses, the way the real services answer them:

- ``GET /files/<name>``: a file, with ``Range`` (206 and ``Content-Range``), ``ETag`` and
  ``Accept-Ranges``, as any static file server or CDN;
- ``GET /api/download/models/<id>`` and ``/api/v1/model-versions/<id>``: Civitai's
  download link (with ``Content-Disposition``) and its metadata (files, SHA-256, type,
  base model);
- the Hub: ``GET /api/models/<org>/<name>/revision/<rev>?blobs=true`` (what
  ``huggingface_hub.HfApi.model_info(files_metadata=True)`` calls: the commit, each file's
  size and LFS SHA-256, ``gated``, the card's licence) and ``GET /<org>/<name>/resolve/<rev>/
  <path>`` (the download), refusing a gated repo's files with 401/403 and ``X-Error-Code:
  GatedRepo`` as the Hub does.

Behaviours a test switches on: ``cut_once`` (close a file's first response after half its
bytes), ``rate`` (bytes per second, so a download reports progress as it goes),
``hold_at`` (a file's responses stop at that byte offset until ``release()``, so a test
interrupts a download that cannot finish first, however slow the machine), ``announce`` (a
size larger than the file, so the free-space check refuses it).  ``requests`` records each
request's path and Range header.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

CHUNK = 64 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Repo:
    files: dict[str, Path]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False
    licence: str = "apache-2.0"
    # Tokens of accounts that accepted the licence (gated repos).
    accepted: tuple[str, ...] = ()


@dataclass
class Civitai:
    filename: str
    path: Path
    meta: dict[str, Any]


@dataclass
class ModelServer:
    files: dict[str, Path] = field(default_factory=dict)
    repos: dict[str, Repo] = field(default_factory=dict)
    civitai: dict[int, Civitai] = field(default_factory=dict)
    cut_once: set[str] = field(default_factory=set)
    rate: float | None = None
    announce: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    hold_at: int | None = None
    released: threading.Event = field(default_factory=threading.Event)
    # How long a held response waits for release() at most (a test that forgets it).
    hold_seconds: float = 60.0

    def hold(self, offset: int) -> None:
        self.released.clear()
        self.hold_at = offset

    def release(self) -> None:
        self.hold_at = None
        self.released.set()

    def ranges(self, path: str) -> list[str | None]:
        """The Range headers of the requests for ``path`` (None: the whole file)."""
        return [r for p, r in self.requests if p == path]


def _handler(state: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return None

        def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            state.requests.append((path, self.headers.get("Range")))
            if path.startswith("/files/"):
                found = state.files.get(path.removeprefix("/files/"))
                return self._file(found, path) if found else self._json(404, {})
            if m := re.match(r"^/api/download/models/(\d+)$", path):
                item = state.civitai.get(int(m.group(1)))
                if item is None:
                    return self._json(404, {"error": "no such version"})
                return self._file(item.path, path, {"Content-Disposition":
                                                    f'attachment; filename="{item.filename}"'})
            if m := re.match(r"^/api/v1/model-versions/(\d+)$", path):
                item = state.civitai.get(int(m.group(1)))
                return self._json(200, item.meta) if item else self._json(404, {})
            if m := re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/]+)$", path):
                return self._model_info(m.group(1), m.group(2))
            if m := re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path):
                return self._resolve(m.group(1), m.group(2), m.group(3), path)
            return self._json(404, {"error": "not found"})

        def _model_info(self, repo_id: str, revision: str) -> None:
            repo = state.repos.get(repo_id)
            if repo is None:
                return self._json(401, {"error": "Repository Not Found"},
                                  {"X-Error-Code": "RepoNotFound"})
            if revision not in ("main", repo.commit):
                return self._json(404, {"error": "Invalid rev id"},
                                  {"X-Error-Code": "RevisionNotFound"})
            siblings = []
            for name, file in sorted(repo.files.items()):
                size = file.stat().st_size
                entry: dict[str, Any] = {"rfilename": name, "size": size,
                                         "blobId": hashlib.sha1(name.encode()).hexdigest()}
                if name.endswith((".safetensors", ".gguf", ".bin", ".ckpt")):
                    entry["lfs"] = {"size": size, "sha256": sha256_of(file),
                                    "pointerSize": 134}
                siblings.append(entry)
            self._json(200, {"id": repo_id, "sha": repo.commit, "private": False,
                             "gated": "manual" if repo.gated else False,
                             "cardData": {"license": repo.licence}, "siblings": siblings})

        def _resolve(self, repo_id: str, revision: str, name: str, path: str) -> None:
            repo = state.repos.get(repo_id)
            if repo is None or name not in repo.files or revision not in ("main", repo.commit):
                return self._json(404, {"error": "Entry not found"},
                                  {"X-Error-Code": "EntryNotFound"})
            if repo.gated:
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ").strip()
                if token not in repo.accepted:
                    status = 403 if token else 401
                    return self._json(status, {"error": "Access to this repo is restricted"},
                                      {"X-Error-Code": "GatedRepo"})
            self._file(repo.files[name], path, {"X-Repo-Commit": repo.commit})

        def _file(self, file: Path, key: str, extra: dict[str, str] | None = None) -> None:
            size = file.stat().st_size
            etag = f'"{hashlib.sha1(f"{file}:{size}".encode()).hexdigest()}"'
            announced = state.announce.get(key, size)
            start, status, end = 0, 200, announced - 1
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and (if_range is None or if_range == etag):
                m = re.match(r"bytes=(\d+)-(\d*)", wanted)
                if m:
                    start, status = int(m.group(1)), 206
                    if start >= announced:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{announced}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    end = int(m.group(2)) if m.group(2) else end
            end = min(end, announced - 1)
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{announced}")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            cut = key in state.cut_once and start == 0 and end - start > 1
            if cut:
                state.cut_once.discard(key)
            limit = (end - start + 1) // 2 if cut else end - start + 1
            sent = 0
            with file.open("rb") as fh:
                fh.seek(start)
                while sent < limit:
                    held = state.hold_at
                    if held is not None and start + sent >= held:
                        state.released.wait(state.hold_seconds)
                    chunk = fh.read(min(CHUNK, limit - sent))
                    if not chunk:
                        break
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(chunk)
                    if state.rate:
                        time.sleep(len(chunk) / state.rate)
            if cut or sent < end - start + 1:
                self.close_connection = True  # the rest never comes: a dropped connection

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a probe reads the headers only, a cancelled pull) is
        # normal here, not worth a traceback on stderr.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def model_server(state: ModelServer | None = None) -> Iterator[ModelServer]:
    state = state or ModelServer()
    server = _Server(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def demo_checkpoint(demo_path: Path, target: Path) -> Path:
    """The demo model as one SD-layout .safetensors checkpoint (a few MB)."""
    from tests.checkpoint_support import write_checkpoint

    return write_checkpoint(demo_path, target)


def chat_gguf() -> Path:
    """The bundled chat model's GGUF (SmolLM2-135M, ~100 MB)."""
    from ronghe.engines.llm.bundled import resolve_model_path

    return resolve_model_path("bundled:smollm2")
