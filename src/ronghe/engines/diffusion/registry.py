"""Image models by name, as configured in ``settings.image_models``.

The registry only knows where models are and what they can do (sizes, ControlNets, default
steps); loading is ``pipelines.PipelineCache``'s job.  ``check`` runs at submit time so an
absent or broken model is a clear client error, never a crash inside a worker.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ronghe.errors import BadRequest, NotReady
from ronghe.queues import image_queue
from ronghe.settings import ImageModelSpec

BUNDLED = "bundled:"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
# Output sides accepted when a model declares no narrower range (multiples of 8).
SIZE_MIN, SIZE_MAX, SIZE_STEP = 64, 2048, 8
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.0
DEMO_CONTROLNETS = ("canny", "brightness", "tile")


def bundled_path(path: str) -> Path:
    """``bundled:demo`` -> the shipped demo model; ``bundled:demo-canny`` (``-brightness``,
    ``-tile``) -> its ControlNets."""
    from ronghe.engines.diffusion.demo import default_controlnet_path, default_model_path

    known = ["demo", *(f"demo-{kind}" for kind in DEMO_CONTROLNETS)]
    name = path.removeprefix(BUNDLED)
    if name not in known:
        raise ValueError(f"unknown bundled model {path!r}; known: "
                         + ", ".join(BUNDLED + k for k in known))
    if name == "demo":
        return default_model_path()
    return default_controlnet_path(name.removeprefix("demo-"))


def resolve_path(path: str) -> Path:
    return bundled_path(path) if path.startswith(BUNDLED) else Path(path).expanduser()


@dataclass(frozen=True)
class ModelEntry:
    """One configured image model, with what its folder's ``ronghe.json`` adds."""

    spec: ImageModelSpec
    path: Path
    controlnets: dict[str, Path]
    # Models trained at a small fixed size render at it and are resized (the demo: 32).
    native_resolution: int | None
    default_steps: int
    # The model's own recommendation; the API's ``scale`` default stays the spec's 7.
    recommended_guidance: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def single_file(self) -> bool:
        return self.path.suffix.lower() in SINGLE_FILE_SUFFIXES

    @property
    def min_size(self) -> int:
        return max(SIZE_MIN, self.spec.min_size or SIZE_MIN)

    @property
    def max_size(self) -> int:
        return min(SIZE_MAX, self.spec.max_size or SIZE_MAX)

    @property
    def queue(self) -> str:
        return image_queue(self.family)

    def problem(self) -> str | None:
        """Why this model cannot load, judged from its files without loading it."""
        if not self.path.exists():
            return f"model files are missing at {self.path}"
        if self.path.is_dir():
            if not (self.path / "model_index.json").is_file():
                return f"{self.path} is not a diffusers folder (no model_index.json)"
        elif not self.single_file:
            return f"{self.path} must be a diffusers folder or a .safetensors/.ckpt file"
        for cn, cn_path in self.controlnets.items():
            if not (cn_path / "config.json").is_file():
                return f"ControlNet {cn!r} files are missing at {cn_path}"
        return None


def _folder_meta(path: Path) -> dict[str, Any]:
    meta_file = path / "ronghe.json" if path.is_dir() else None
    if meta_file is None or not meta_file.is_file():
        return {}
    try:
        data = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def make_entry(spec: ImageModelSpec) -> ModelEntry:
    path = resolve_path(spec.path)
    meta = _folder_meta(path)
    recommended = meta.get("recommended") or {}
    native = meta.get("native_resolution")
    steps = spec.default_steps or recommended.get("num_inference_steps") or DEFAULT_STEPS
    guidance = recommended.get("guidance_scale")
    return ModelEntry(
        spec=spec, path=path,
        controlnets={name: resolve_path(p) for name, p in spec.controlnets.items()},
        native_resolution=int(native) if isinstance(native, int | float) else None,
        default_steps=int(steps),
        recommended_guidance=float(guidance) if isinstance(guidance, int | float) else None,
        meta=meta,
    )


class ModelsConfig(Protocol):
    """What the registry reads: ``Settings`` in a server, ``ChildConfig`` in an engine's child
    process."""

    @property
    def image_models(self) -> list[ImageModelSpec]: ...

    @property
    def image_default_model(self) -> str: ...


class ModelRegistry:
    """One per process (``Services.image_models``): a model that failed to load is marked
    broken here, so every later submit and training run in this process fails fast."""

    def __init__(self, settings: ModelsConfig) -> None:
        self.default_name = settings.image_default_model
        self._specs = list(settings.image_models)
        self._by_name: dict[str, ImageModelSpec] = {}
        for spec in self._specs:
            for key in (spec.name, *spec.aliases):
                self._by_name.setdefault(key, spec)
        self._entries: dict[str, ModelEntry] = {}
        # name -> why loading failed; set by the pipeline cache, so later submits fail fast.
        self._broken: dict[str, str] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return [spec.name for spec in self._specs]

    def choices(self) -> list[str]:
        """Every accepted model_name: names and aliases, in configuration order."""
        return list(self._by_name)

    def default_choice(self) -> str:
        """The name clients see as default: the default model's first alias (the spec's
        ``Artist_V0.1.3``) when it has one."""
        spec = self._by_name.get(self.default_name)
        if spec is None:
            return self.default_name
        return spec.aliases[0] if spec.aliases else spec.name

    def find(self, name: str) -> ModelEntry | None:
        spec = self._by_name.get(name or self.default_name)
        if spec is None:
            return None
        with self._lock:
            entry = self._entries.get(spec.name)
            if entry is None:
                entry = self._entries[spec.name] = make_entry(spec)
            return entry

    def entries(self) -> list[ModelEntry]:
        return [e for e in (self.find(s.name) for s in self._specs) if e is not None]

    def get(self, name: str, field: str = "model_name") -> ModelEntry:
        entry = self.find(name)
        if entry is None:
            raise BadRequest(f"{field}: unknown model {name!r}; available: "
                             + ", ".join(self.choices()), field=field)
        return entry

    def check(self, entry: ModelEntry, field: str = "model_name") -> None:
        """Raise a clear error when the model cannot be used (files missing, failed load)."""
        problem = self._broken.get(entry.name) or entry.problem()
        if problem:
            raise NotReady(f"{field}: model {entry.name!r} cannot be used: {problem}",
                           field=field)

    def mark_broken(self, name: str, reason: str) -> None:
        self._broken[name] = reason

    def mark_loaded(self, name: str) -> None:
        self._broken.pop(name, None)

    def readiness(self) -> tuple[bool, str]:
        entry = self.find(self.default_name)
        if entry is None:
            return False, f"default image model {self.default_name!r} is not configured"
        problem = self._broken.get(entry.name) or entry.problem()
        if problem:
            return False, f"{entry.name}: {problem}"
        return True, f"{len(self._specs)} image model(s): {', '.join(self.names())}"


def describe(entry: ModelEntry, default: bool = False) -> dict[str, Any]:
    """One row for ``ronghe models`` and the listings."""
    return {
        "name": entry.name, "family": entry.family, "aliases": list(entry.spec.aliases),
        "path": str(entry.path), "single_file": entry.single_file,
        "controlnets": sorted(entry.controlnets), "native_resolution": entry.native_resolution,
        "sizes": f"{entry.min_size}-{entry.max_size}", "default_steps": entry.default_steps,
        "default": default, "problem": entry.problem(),
    }
