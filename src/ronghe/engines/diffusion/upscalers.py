"""Upscaler models: ESRGAN, Real-ESRGAN, SwinIR, HAT and the like, from ``<models>/upscalers/``.

A file dropped into the folder (``.pth``, ``.pt``, ``.safetensors``, ``.ckpt``) is served
under its file name without the suffix.  ``spandrel`` tells the architecture from the
weights alone, so no sidecar is needed.  The folder is looked at on every listing (a
directory read and a ``stat`` per file); a new or changed file is loaded once to learn its
architecture and scale, and a file that cannot be used is listed with its problem, never
skipped.  This is kept apart from the image models' scan (``library.py``): that folder's
``upscalers/`` subfolder is not an image model, and its files are not checkpoints.

Loaded models are cached per process (the image worker's child process has its own), two at
most, least recently used first out.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import threading
import types
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUBFOLDER = "upscalers"
SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")
# What spandrel calls single-image models that take a picture and give a picture back: a
# super-resolution model (2x, 4x …) or a 1x restoration (denoise, de-JPEG).  Face
# restoration (FaceSR) and inpainting models need more than an image.
PURPOSES = ("SR", "Restoration")
MAX_LOADED = 2
MAX_NAME = 128


@dataclass(frozen=True)
class Upscaler:
    """One file of the upscalers folder, as its last inspection saw it."""

    name: str
    path: Path
    # spandrel's architecture name (ESRGAN, RealCUGAN, SwinIR, HAT …); "" if unreadable.
    architecture: str = ""
    scale: int | None = None
    problem: str | None = None


def folder(models_path: Path) -> Path:
    """``<models>/upscalers``: where upscaler models are dropped."""
    return models_path / SUBFOLDER


def signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


# --- importing spandrel


@contextlib.contextmanager
def _without_torchvision() -> Iterator[None]:
    """spandrel imports two torchvision functions at import time, for LaMa (inpainting) and
    RestoreFormer (faces), neither of which Ronghe loads.  Where torchvision cannot be
    installed beside the CPU build of torch (PyPI's is a CUDA build: install.sh removes it),
    stand-ins that refuse to run let spandrel import; they leave ``sys.modules`` afterwards,
    so nothing else (transformers, diffusers) sees a torchvision."""
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    modules = [types.ModuleType(name) for name in names]

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def missing(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("this model needs torchvision, which is not installed")

    functional = modules[2]
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = functional.normalize = missing  # type: ignore[attr-defined]
    modules[0].transforms = modules[1]  # type: ignore[attr-defined]
    modules[1].functional = functional  # type: ignore[attr-defined]
    sys.modules.update(zip(names, modules, strict=True))
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)


def spandrel() -> Any:
    """The ``spandrel`` module (imported on first use: it imports every architecture)."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with _without_torchvision():
            import spandrel as module
        return module
    import spandrel as module

    return module


# --- loading


_lock = threading.Lock()
_loaded: OrderedDict[tuple[str, tuple[int, int], str], Any] = OrderedDict()
_verdicts: dict[str, tuple[tuple[int, int], Upscaler]] = {}


class UpscalerError(Exception):
    """A file that is not an upscaler this server can run."""


def _read(path: Path, device: str) -> Any:
    """The file as a spandrel ``ImageModelDescriptor`` in eval mode, or UpscalerError."""
    lib = spandrel()
    try:
        model = lib.ModelLoader(device=device).load_from_file(str(path))
    except Exception as exc:  # spandrel's own errors and torch's unpickling ones alike
        raise UpscalerError(f"not an upscaler model spandrel knows: "
                            f"{type(exc).__name__}: {exc}"[:500]) from None
    if not isinstance(model, lib.ImageModelDescriptor):
        raise UpscalerError(f"a {model.architecture.name} model is not an image-to-image "
                            "model")
    if model.purpose not in PURPOSES:
        raise UpscalerError(f"a {model.architecture.name} model for {model.purpose}; only "
                            "super-resolution and restoration models upscale")
    if model.input_channels != 3 or model.output_channels != 3:
        raise UpscalerError(f"takes {model.input_channels} channels and gives "
                            f"{model.output_channels}; an upscaler takes and gives RGB")
    return model.eval()


def load(path: Path, device: str = "cpu") -> Any:
    """The model in ``path``, loaded once per process and file version."""
    key = (str(path), signature(path), device)
    with _lock:
        model = _loaded.get(key)
        if model is not None:
            _loaded.move_to_end(key)
            return model
        model = _read(path, device)
        _loaded[key] = model
        while len(_loaded) > MAX_LOADED:
            _loaded.popitem(last=False)
        return model


def inspect(path: Path, name: str) -> Upscaler:
    """What a file is (architecture, scale) or why it cannot be used; remembered per file
    version, so a listing loads each new file once."""
    try:
        sig = signature(path)
    except OSError as exc:
        return Upscaler(name, path, problem=f"cannot be read: {exc}")
    with _lock:
        known = _verdicts.get(str(path))
    if known is not None and known[0] == sig and known[1].name == name:
        return known[1]
    try:
        model = _read(path, "cpu")
        found = Upscaler(name, path, model.architecture.name, int(model.scale))
        del model
    except UpscalerError as exc:
        found = Upscaler(name, path, problem=str(exc))
    with _lock:
        _verdicts[str(path)] = (sig, found)
    return found


# --- the folder


def scan(root: Path, reserved: tuple[str, ...] = ()) -> list[Upscaler]:
    """Every model file of the folder in name order; ``reserved``: names of the built-in
    upscalers (Lanczos, Latent …), which a file may not take."""
    try:
        paths = sorted(p for p in root.iterdir()
                       if p.is_file() and p.suffix.lower() in SUFFIXES
                       and not p.name.startswith("."))
    except OSError:  # no folder (or unreadable): no upscaler models
        return []
    taken = {r.lower() for r in reserved}
    found = []
    for path in paths:
        name = path.stem[:MAX_NAME]
        if name.lower() in taken:
            problem = (f"another upscaler is also named {name!r} (a built-in one or another "
                       "file here); rename the file")
            found.append(Upscaler(name, path, problem=problem))
            continue
        taken.add(name.lower())
        found.append(inspect(path, name))
    return found


def find(root: Path, name: str, reserved: tuple[str, ...] = ()) -> Upscaler | None:
    """A model of the folder by name (case does not matter), problem or not."""
    wanted = name.strip().lower()
    return next((u for u in scan(root, reserved) if u.name.lower() == wanted), None)
