"""The models folder: image models, chat GGUFs and LoRAs dropped under the data directory.

``<data_dir>/models/`` holds diffusers folders, single ``.safetensors`` / ``.ckpt``
checkpoints and transformer files (image models; a transformer file may be a ``.gguf``
quantisation) and ``.gguf`` chat models, told apart by their tensor names;
``<data_dir>/loras/`` holds LoRA files.  Each is served under its file or folder name.  A
scan reads each new or changed file's tensor names only (``checkpoints``), tells its family,
and writes what it found to ``.ronghe-index.json`` in the models folder; every process (the
server, its image worker, scale-out workers, the CLI) reads that index, so ``ronghe models
scan`` reaches a running server without a restart.  A file that cannot be used is listed
with its problem, never skipped silently and never fatal.

Beside a file, ``<stem>.ronghe.json`` may say ``{"family": "sd15", "description": "…"}``
(for a folder: its ``ronghe.json``); a stated family wins over the detected one, and a
mismatch is reported as the model's problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ronghe.engines.diffusion import checkpoints, families
from ronghe.engines.diffusion.checkpoints import CheckpointError

INDEX_FILE = ".ronghe-index.json"
BROKEN_FILE = ".ronghe-broken.json"
SIDECAR_SUFFIX = ".ronghe.json"
IMAGE_SUFFIXES = (".safetensors", ".ckpt")
# A .gguf is a chat model unless its tensors are an image transformer's.
CHAT_SUFFIX = GGUF_SUFFIX = ".gguf"
LORA_SUFFIXES = (".safetensors",)
# Bumped when inspection changes, so an old index's verdicts are not reused.
INSPECTOR_VERSION = 2
FAMILIES = families.ids()
MAX_NAME = 128


@dataclass(frozen=True)
class Found:
    """One model file or folder as the last scan saw it."""

    name: str
    kind: str  # image | chat | lora
    path: str
    family: str | None
    problem: str | None
    signature: tuple[int, int]  # (bytes, newest mtime_ns): a change means inspect again
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Found:
        return cls(name=data["name"], kind=data["kind"], path=data["path"],
                   family=data.get("family"), problem=data.get("problem"),
                   signature=tuple(data["signature"]),  # type: ignore[arg-type]
                   description=data.get("description", ""), meta=dict(data.get("meta") or {}))


def signature(path: Path) -> tuple[int, int]:
    # The sidecar counts: editing it (family, public, trigger word) means a new verdict.
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    side = sidecar_path(path)
    files += [side] if side.is_file() else []
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def sidecar_path(path: Path) -> Path:
    """``<stem>.ronghe.json`` beside a file, ``<name>.ronghe.json`` beside a folder."""
    return path.with_name((path.name if path.is_dir() else path.stem) + SIDECAR_SUFFIX)


def sidecar(path: Path) -> dict[str, Any]:
    """A file's sidecar; a folder's, else its own ``ronghe.json`` (the demo's has one)."""
    data: dict[str, Any] = {}
    for meta in (path / "ronghe.json" if path.is_dir() else None, sidecar_path(path)):
        if meta is None or not meta.is_file():
            continue
        try:
            loaded = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{meta.name}: not valid JSON ({exc})") from None
        if isinstance(loaded, dict):
            data.update(loaded)
    return data


def write_family(path: Path, family: str) -> None:
    """Record a family given by hand in the model's sidecar (kept with other keys)."""
    target = sidecar_path(path)
    data = _read_json(target) if target.is_file() else {}
    data = data if isinstance(data, dict) else {}
    data["family"] = family
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def classify(path: Path) -> str | None:
    """image, chat or lora for a file or folder someone wants to add; None: neither."""
    if path.is_dir():
        return "image" if (path / "model_index.json").is_file() else None
    suffix = path.suffix.lower()
    if suffix == GGUF_SUFFIX:
        return gguf_kind(path)
    if suffix == ".safetensors":
        try:
            names = checkpoints.safetensors_shapes(path)[0]
        except CheckpointError:
            return "image"  # damaged: the scan reports why
        if not any(n.startswith(checkpoints.UNET) for n in names) and \
                any("lora" in n.lower() for n in names):
            return "lora"
        return "image"
    return "image" if suffix in IMAGE_SUFFIXES else None


def gguf_kind(path: Path) -> str:
    """"image" for a GGUF image transformer (FLUX, Z-Image ...), else "chat"."""
    try:
        shapes = checkpoints.gguf_shapes(path)
    except CheckpointError:
        return "chat"  # damaged: the chat inspection reports why
    return "image" if families.transformer_file_family(shapes) else "chat"


def demo_signature() -> tuple[int, int] | None:
    """The demo UNet's (cross-attention width, input channels): how its files are told."""
    from ronghe.engines.shipped import default_model_path

    try:
        config = json.loads((default_model_path() / "unet" / "config.json").read_text())
        return int(config["cross_attention_dim"]), int(config["in_channels"])
    except (OSError, ValueError, KeyError):
        return None


def folder_family(path: Path, demo: tuple[int, int] | None) -> str:
    """The family of a diffusers folder, from model_index.json (and, for the Stable
    Diffusion pipeline's three families, the UNet's config)."""
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: not a diffusers pipeline folder ({exc})") from None
    cls = index.get("_class_name") if isinstance(index, dict) else None
    found = families.of_folder_class(cls)
    if not found:
        raise CheckpointError(f"{path.name}: a {cls} folder; the pipelines served are "
                              + ", ".join(families.folder_classes()))
    if len(found) == 1:
        return found[0].id
    try:  # StableDiffusionPipeline: the demo, SD 1.5 or SD 2.x by the UNet
        unet = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: its unet/config.json cannot be read ({exc})") \
            from None
    width, channels = unet.get("cross_attention_dim"), unet.get("in_channels")
    if demo is not None and (width, channels) == demo:
        return "demo"
    if width in (768, 1024) and channels == 4:
        return checkpoints.CONTEXT_WIDTH[width]
    raise CheckpointError(f"{path.name}: a UNet with cross-attention width {width} and "
                          f"{channels} input channels: an unknown layout")


def inspect(path: Path, kind: str, demo: tuple[int, int] | None,
            stated: str | None = None) -> tuple[str | None, str | None, dict[str, Any]]:
    """(family, problem, sidecar) of one file or folder; never raises.  ``stated``: a
    family given by hand (else the sidecar's)."""
    meta: dict[str, Any] = {}
    try:
        meta = sidecar(path)
        stated = stated or meta.get("family")
        if stated is not None and stated not in FAMILIES:
            return None, f"its sidecar names family {stated!r}; known: {', '.join(FAMILIES)}", meta
        if kind == "chat":
            with path.open("rb") as fh:
                magic = fh.read(4)
            return None, (None if magic == b"GGUF" else "not a GGUF file"), meta
        if kind == "lora":
            shapes, _ = checkpoints.safetensors_shapes(path)
            detected = checkpoints.lora_family(shapes, demo[0] if demo else None)
        elif path.is_dir():
            detected = folder_family(path, demo)
        else:
            detected = checkpoints.file_family(checkpoints.tensor_shapes(path), demo)
    except CheckpointError as exc:
        return stated, str(exc), meta
    except Exception as exc:  # an unreadable file is one model's problem, never the scan's
        return None, f"cannot be read: {type(exc).__name__}: {exc}"[:500], {}
    if stated is not None and stated != detected:
        return stated, (f"its family is given as {stated} but its weights are "
                        f"{checkpoints.label(detected)}'s ({detected})"), meta
    return detected, None, meta


def _kind(path: Path, root_kind: str) -> str | None:
    name = path.name
    if name.startswith(".") or name.endswith(SIDECAR_SUFFIX) or name.endswith(".json"):
        return None
    if root_kind == "loras":
        return "lora" if path.is_file() and path.suffix.lower() in LORA_SUFFIXES else None
    if path.is_dir():
        return "image" if (path / "model_index.json").is_file() else None
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    return GGUF_SUFFIX if path.suffix.lower() == GGUF_SUFFIX else None


def scan_dir(root: Path, root_kind: str, previous: dict[str, Found],
             demo: tuple[int, int] | None) -> list[Found]:
    """Every usable-looking entry of one folder (models or loras), in name order."""
    try:
        paths = sorted(root.iterdir()) if root.is_dir() else []
    except OSError:  # unreadable: nothing to serve from it, and nothing to crash over
        return []
    found: list[Found] = []
    taken: set[tuple[str, str]] = set()
    for path in paths:
        kind = _kind(path, root_kind)
        if kind is None:
            continue
        name = (path.name if path.is_dir() else path.stem)[:MAX_NAME]
        try:
            sig = signature(path)
        except OSError:
            continue  # removed while we looked
        key = str(path)
        old = previous.get(key)
        if kind == GGUF_SUFFIX:  # chat or image: its tensors tell, read once per version
            kind = old.kind if old is not None and old.signature == sig else gguf_kind(path)
        if old is not None and old.signature == sig and old.kind == kind:
            item = old
        else:
            family, problem, meta = inspect(path, kind, demo)
            item = Found(name, kind, key, family, problem, sig,
                         str(meta.get("description") or ""),
                         {k: v for k, v in meta.items() if k in ("trigger_word", "public", "base")})
        group = "chat" if kind == "chat" else kind
        if (group, name) in taken:
            item = Found(name, kind, key, item.family, f"another file here is also named "
                         f"{name!r}; rename one", sig)
        taken.add((group, name))
        found.append(item)
    return found


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ronghe-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=False)
    os.replace(tmp, path)  # readers see the old index or the new one, never half of one


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class ModelsFolder:
    """``<data_dir>/models`` and ``<data_dir>/loras``, and the index of what they hold."""

    def __init__(self, models_dir: Path, loras_dir: Path) -> None:
        self.models_dir = models_dir
        self.loras_dir = loras_dir
        self.index_path = models_dir / INDEX_FILE
        self.broken_path = models_dir / BROKEN_FILE

    def stamp(self) -> tuple[int, int] | None:
        """Changes whenever a scan writes the index or a load failure is recorded."""
        try:
            index = self.index_path.stat().st_mtime_ns
        except OSError:
            return None
        try:
            broken = self.broken_path.stat().st_mtime_ns
        except OSError:
            broken = 0
        return index, broken

    def load(self) -> list[Found] | None:
        data = _read_json(self.index_path)
        if not isinstance(data, dict) or data.get("version") != INSPECTOR_VERSION:
            return None
        try:
            return [Found.of(item) for item in data.get("items", [])]
        except (KeyError, TypeError, ValueError):
            return None

    def scan(self) -> list[Found]:
        """Look at both folders again (unchanged files keep their verdict) and save it."""
        previous = {f.path: f for f in self.load() or []}
        demo = demo_signature()
        items = (scan_dir(self.models_dir, "models", previous, demo)
                 + scan_dir(self.loras_dir, "loras", previous, demo))
        data = {"version": INSPECTOR_VERSION, "items": [asdict(f) for f in items]}
        changed = _read_json(self.index_path) != json.loads(json.dumps(data))
        if (self.models_dir.is_dir() or items) and changed:
            # A read-only folder: this process still serves what it found.
            with contextlib.suppress(OSError):
                _write_json(self.index_path, data)
        return items

    def current(self) -> list[Found]:
        """The index as saved; scans when there is none yet."""
        items = self.load()
        return self.scan() if items is None else items

    # --- load failures, kept beside the index so `ronghe models` shows them

    def broken(self) -> dict[str, str]:
        """path -> why it failed to load, for files unchanged since the failure."""
        data = _read_json(self.broken_path)
        if not isinstance(data, dict):
            return {}
        out = {}
        for path, info in data.items():
            try:
                if tuple(info["signature"]) == signature(Path(path)):
                    out[path] = str(info["reason"])
            except (OSError, KeyError, TypeError):
                continue
        return out

    def mark_broken(self, path: Path, reason: str) -> None:
        data = _read_json(self.broken_path)
        data = data if isinstance(data, dict) else {}
        try:
            data[str(path)] = {"reason": reason, "signature": list(signature(path))}
            _write_json(self.broken_path, data)
        except OSError:
            return  # gone or read-only: the in-process mark still holds

    def clear_broken(self, path: Path) -> None:
        data = _read_json(self.broken_path)
        if isinstance(data, dict) and data.pop(str(path), None) is not None:
            with contextlib.suppress(OSError):
                _write_json(self.broken_path, data)
