"""One file over plain HTTP(S), resumable: the bytes of every pull, from the Hub or a URL.

A file is fetched into ``<target>.part``; beside it, ``<target>.part.json`` records what it
is a part of (size, SHA-256, ETag).  A later fetch of the same file asks for the rest only
(``Range: bytes=N-``, with ``If-Range`` so a file changed on the server starts over instead
of being spliced), so a pull cut by a broken connection, Ctrl-C or a server restart goes on
where it stopped.  Within one fetch a dropped connection is retried a few times, each
continuing from the bytes already written.

Timeouts: a connection that cannot be opened within ``CONNECT_SECONDS`` fails at once with
one line (no retries when nothing was ever received: no network is not worth waiting on);
a connection that sends nothing for ``READ_SECONDS`` is retried.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from ronghe import __version__
from ronghe.downloads.errors import AccessRefused, NoSpace, PullError, Unreachable

log = structlog.get_logger(__name__)

CONNECT_SECONDS = 10.0
READ_SECONDS = 60.0
CHUNK = 1 << 20
# Tries of one file after a dropped connection (each resumes), with backoff between them.
RETRIES = 5
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0)
PART, PART_META = ".part", ".part.json"
# Write errors that mean "no more room" (EFBIG: a per-process file-size limit, a quota).
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes \*/(\d+)")


@dataclass(frozen=True)
class RemoteFile:
    url: str
    # Where it goes, relative to the pull's staging tree (a repo path or a file name).
    path: str
    size: int | None
    sha256: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Said when the server refuses access (401/403): how to get it (a licence, a token).
    access_hint: str = ""


def client(headers: Mapping[str, str] | None = None) -> httpx.Client:
    """An HTTP client with the pull's timeouts; identity encoding, so lengths are bytes."""
    base = {"Accept-Encoding": "identity", "User-Agent": f"ronghe/{__version__}"}
    return httpx.Client(timeout=httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS),
                        follow_redirects=True, headers={**base, **(headers or {})})


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def unreachable(url: str, exc: Exception) -> Unreachable:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        reason = f"no answer within {CONNECT_SECONDS:g} s"
    return Unreachable(f"cannot reach {host_of(url)}: {reason} (is this machine online?)")


def disk_full(where: Path, exc: OSError) -> NoSpace:
    return NoSpace(f"the disk is full: writing {where.name} in {where.parent} failed "
                   f"({os.strerror(exc.errno or errno.ENOSPC)}); free some space and pull "
                   "again: it resumes where it stopped")


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def part_paths(target: Path) -> tuple[Path, Path]:
    return target.with_name(target.name + PART), target.with_name(target.name + PART_META)


def partial_bytes(target: Path) -> int:
    """Bytes of ``target`` already downloaded (complete or partial)."""
    if target.is_file():
        return target.stat().st_size
    part, _ = part_paths(target)
    return part.stat().st_size if part.is_file() else 0


class _Stream:
    """One GET of what is still missing; knows how the server answered."""

    def __init__(self, http: httpx.Client, remote: RemoteFile, part: Path, meta_path: Path,
                 on_bytes: Callable[[int], None]) -> None:
        self.http, self.remote, self.part, self.meta_path = http, remote, part, meta_path
        self.on_bytes = on_bytes
        self.meta = _read_meta(meta_path)
        self.total: int | None = remote.size

    def have(self) -> int:
        return self.part.stat().st_size if self.part.is_file() else 0

    def restart(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()
        self.meta = {}
        with contextlib.suppress(FileNotFoundError):
            self.meta_path.unlink()

    def check_identity(self) -> None:
        """A part of another version of the file (its size or hash changed) starts over."""
        for key, known in (("size", self.remote.size), ("sha256", self.remote.sha256)):
            if known is not None and self.meta.get(key) not in (None, known):
                log.info("partial download is of another version; starting over",
                         file=self.remote.path)
                self.restart()
                return

    def once(self) -> bool:
        """One request; True when the file is complete."""
        have = self.have()
        if self.total is not None and have == self.total:
            return True
        if self.total is not None and have > self.total:
            self.restart()
            have = 0
        headers = dict(self.remote.headers)
        validator = self.meta.get("etag") or self.meta.get("last_modified")
        if have:
            headers["Range"] = f"bytes={have}-"
            if validator:
                headers["If-Range"] = validator
        with self.http.stream("GET", self.remote.url, headers=headers) as response:
            return self._receive(response, have)

    def _receive(self, response: httpx.Response, have: int) -> bool:
        status = response.status_code
        if status == 416 and have:
            match = _UNSATISFIED.match(response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == have:
                return True  # everything was there already
            self.restart()
            return False
        if status in (401, 403):
            hint = f"; {self.remote.access_hint}" if self.remote.access_hint else ""
            raise AccessRefused(f"{host_of(self.remote.url)} refused the download of "
                                f"{self.remote.path} (HTTP {status}){hint}")
        if status == 404:
            raise PullError(f"{self.remote.url} was not found (HTTP 404)", keep_partial=False)
        if status >= 500:
            raise httpx.RemoteProtocolError(f"the server answered HTTP {status}")
        if status >= 400:
            raise PullError(f"{host_of(self.remote.url)} answered HTTP {status} for "
                            f"{self.remote.path}", keep_partial=False)
        mode = "ab"
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                self.restart()  # not the range asked for: never splice it in
                return False
            if match.group(3) != "*":
                self.total = self.total or int(match.group(3))
        else:
            if have:
                log.info("the server sent the whole file again; starting over",
                         file=self.remote.path)
                self.on_bytes(-have)
            mode, have = "wb", 0
            length = response.headers.get("Content-Length")
            if length and length.isdigit():
                self.total = self.total or int(length)
        self.meta.update({"url": self.remote.url, "size": self.total,
                          "sha256": self.remote.sha256,
                          "etag": _strong(response.headers.get("ETag")),
                          "last_modified": response.headers.get("Last-Modified")})
        _write_meta(self.meta_path, self.meta)
        try:
            with self.part.open(mode) as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    self.on_bytes(len(chunk))
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                raise disk_full(self.part, exc) from None
            raise
        done = self.have()
        if self.total is not None and done < self.total:
            raise httpx.RemoteProtocolError(f"the connection closed at {done} of "
                                            f"{self.total} bytes")
        self.total = self.total or done
        return True


def _strong(etag: str | None) -> str | None:
    """Only a strong ETag may go in If-Range (RFC 9110); a weak one is dropped."""
    return etag if etag and not etag.startswith("W/") else None


def fetch(http: httpx.Client, remote: RemoteFile, target: Path,
          on_bytes: Callable[[int], None], sleep: Callable[[float], None] = time.sleep) -> int:
    """Download ``remote`` to ``<target>.part`` (resuming what is there) and return its size.
    The caller verifies it and renames it to ``target``.  ``on_bytes`` gets each chunk's
    length as it is written (negative when the server made a resumed file start over)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part, meta_path = part_paths(target)
    stream = _Stream(http, remote, part, meta_path, on_bytes)
    stream.check_identity()
    received_any = False  # in this call: a partial from before proves nothing about now
    attempt = 0
    while True:
        before = stream.have()
        try:
            if stream.once():
                return stream.have()
            continue  # restarted from zero on the server's answer: ask again
        except httpx.TransportError as exc:
            # Nothing ever came and the host cannot be reached: no network, say so now.
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and not received_any:
                raise unreachable(remote.url, exc) from None
            received_any = received_any or stream.have() > before
            if stream.have() > before:
                attempt = 0  # progress was made: the connection is flaky, not dead
            if attempt >= RETRIES:
                raise unreachable(remote.url, exc) from None
            log.info("download interrupted; resuming", file=remote.path,
                     at=stream.have(), error=str(exc) or type(exc).__name__)
            sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
            attempt += 1


@contextlib.contextmanager
def probe(http: httpx.Client, url: str,
          headers: Mapping[str, str] | None = None) -> Iterator[httpx.Response]:
    """The response headers of a GET for the first byte (many signed download links refuse
    HEAD); the body is never read."""
    try:
        with http.stream("GET", url, headers={**(headers or {}), "Range": "bytes=0-0"}) as r:
            yield r
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise unreachable(url, exc) from None
    except httpx.TransportError as exc:
        raise Unreachable(f"{host_of(url)} stopped answering: {exc}") from None


def total_size(response: httpx.Response) -> int | None:
    """The whole file's size from a probe's answer (Content-Range, else Content-Length)."""
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if response.status_code == 206 and match and match.group(3) != "*":
        return int(match.group(3))
    length = response.headers.get("Content-Length", "")
    return int(length) if response.status_code == 200 and length.isdigit() else None
