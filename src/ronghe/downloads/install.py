"""A downloaded model's last steps: what it is, whether it is what its name says, its
sidecar, and the one move into the models folder.  Also where models go (``Places``) and what
is installed (``installed_entries``, ``size_of``)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ronghe.downloads import catalogue
from ronghe.downloads.errors import PickleRefused

STAGING = "downloads"
SIDECAR = ".ronghe.json"
FOLDER_SIDECAR = "ronghe.json"
# Python pickles: loading one can run code.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


@dataclass(frozen=True)
class Places:
    """Where pulls stage their files and where models go."""

    data_dir: Path
    models: Path
    loras: Path

    @property
    def staging(self) -> Path:
        return self.data_dir / STAGING

    def root(self, kind: str) -> Path:
        if kind == "lora":
            return self.loras
        return self.models / "upscalers" if kind == "upscaler" else self.models


def size_of(path: Path) -> int:
    """Bytes on disk of a model file or folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def installed_entries(places: Places) -> dict[str, dict[str, Any]]:
    """Catalogue name -> where it is installed and its size, for the installed ones."""
    found: dict[str, dict[str, Any]] = {}
    for entry in catalogue.ENTRIES:
        root = places.root(entry.kind)
        paths = [root / entry.name] if entry.folder else [
            p for p in root.glob(f"{entry.name}.*") if not p.name.endswith(".json")]
        for path in paths:
            if path.exists():
                found[entry.name] = {"path": str(path), "bytes": size_of(path)}
    return found


def kind_of(path: Path) -> str:
    """image, chat, lora or upscaler for a single downloaded file nobody named a kind for."""
    from ronghe.engines.diffusion import library

    if path.suffix.lower() == ".pth":
        return "upscaler"  # ESRGAN's convention; checkpoints are .ckpt or .safetensors
    return library.classify(path) or "image"


def named_by_content(path: Path) -> Path:
    """A file whose URL said no format, renamed by its first bytes."""
    with path.open("rb") as fh:
        head = fh.read(9)
    if head[:4] == b"GGUF":
        suffix = ".gguf"
    elif head[8:9] == b"{":
        suffix = ".safetensors"
    else:
        suffix = ".ckpt"  # a pickle or unknown: check_format decides
    named = path.with_suffix(suffix)
    os.replace(path, named)
    return named


def inspect(target: Path, kind: str, family: str | None) -> tuple[str | None, str | None]:
    """The family the models folder sees in the installed model, and its problem."""
    if kind == "upscaler":
        return None, None
    from ronghe.engines.diffusion import library

    found, problem, _ = library.inspect(target, kind, library.demo_signature())
    return (found or family) if kind != "chat" else None, problem


def check_format(path: Path, allow_pickle: bool) -> None:
    """Weights are what their names say: safetensors and GGUF files are checked by their
    first bytes (a renamed pickle is refused), pickles only with ``allow_pickle``."""
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".gguf", *PICKLE_SUFFIXES) or path.is_dir():
        return
    with path.open("rb") as fh:
        head = fh.read(16)
    if suffix == ".gguf":
        ok = head[:4] == b"GGUF"
    elif suffix == ".safetensors":
        length = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
        ok = 0 < length < path.stat().st_size and head[8:9] == b"{"
    else:
        ok = allow_pickle
    if ok:
        return
    path.unlink(missing_ok=True)
    looks = "a pickle (zip) archive" if head[:2] == b"PK" or head[:1] == b"\x80" else \
        "something else"
    if suffix in PICKLE_SUFFIXES:
        raise PickleRefused(f"{path.name} is a pickle file, which can run code when loaded; "
                            "pass --allow-pickle if you trust where it comes from")
    raise PickleRefused(f"{path.name} is not a {suffix[1:]} file (it is {looks}); it was "
                        "deleted and nothing was installed")


def read_sidecar(target: Path) -> dict[str, Any]:
    path = target / FOLDER_SIDECAR if target.is_dir() else \
        target.with_name(target.stem + SIDECAR)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sidecar_of(path: Path) -> Path:
    """A folder's own ``ronghe.json`` (the registry reads a folder's settings there), a
    file's ``<stem>.ronghe.json`` beside it (engines/diffusion/library.py)."""
    return path / FOLDER_SIDECAR if path.is_dir() else path.with_name(path.stem + SIDECAR)


def write_sidecar(source: Path, family: str | None, recommended: dict[str, Any] | None,
                  description: str, licence: dict[str, str], origin: dict[str, Any]) -> None:
    """What the models folder reads (family, recommended settings, a description) and where
    the model came from (``origin``: the ref, repo and commit or URL, hashes), written before
    the model is moved into place."""
    path = sidecar_of(source)
    data = read_sidecar(source) if path.is_file() else {}
    if family:
        data["family"] = family
    if recommended:
        data["recommended"] = {**data.get("recommended", {}), **recommended}
    if description:
        data.setdefault("description", description)
    if licence:
        data["licence"] = licence
    data["source"] = {**origin, "pulled_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def move_into_place(source: Path, target: Path) -> None:
    """One rename into the models folder (the sidecar first, for a file); across disks a
    copy to a hidden name first, so a scan never sees half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    side = None if source.is_dir() else sidecar_of(source)
    if side is not None and side.is_file():
        shutil.copyfile(side, sidecar_of(target))
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # the models folder is on another filesystem
            raise
        hidden = target.with_name(f".{target.name}.{int(time.time())}.installing")
        if source.is_dir():
            shutil.copytree(source, hidden)
        else:
            shutil.copyfile(source, hidden)
        os.replace(hidden, target)
