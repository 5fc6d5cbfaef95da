"""Image models by name, as configured in ``settings.image_models``.

The registry only knows where models are and what they can do (sizes, ControlNets, default
steps); loading is ``pipelines.PipelineCache``'s job.  ``check`` runs at submit time so an
absent or broken model is a clear client error, never a crash inside a worker.

Besides the configured models it serves what the models folder holds (``library``): the
folder's index is re-read whenever a scan (in any process) rewrote it, so a model dropped
in and scanned appears without a restart.  Configured names win over folder names.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ronghe.engines.diffusion import checkpoints, families
from ronghe.engines.diffusion.families import Family, Recommended
from ronghe.engines.diffusion.guidance import GuidanceSchedule
from ronghe.engines.diffusion.library import FAMILIES, Found, ModelsFolder
from ronghe.errors import BadRequest, NotReady
from ronghe.queues import image_queue
from ronghe.settings import ImageModelSpec

BUNDLED = "bundled:"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".gguf")
# Output sides accepted when a model declares no narrower range (multiples of 8); each
# family narrows them (families.py), and the transformer families take multiples of 16.
SIZE_MIN, SIZE_MAX, SIZE_STEP = 64, 2048, 8
TRANSFORMER_SIZE_STEP = 16
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.0
DEMO_CONTROLNETS = ("canny", "brightness", "tile")


def bundled_path(path: str) -> Path:
    """``bundled:demo`` -> the shipped demo model; ``bundled:demo-canny`` (``-brightness``,
    ``-tile``) -> its ControlNets."""
    from ronghe.engines.shipped import default_controlnet_path, default_model_path

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
    # Full guidance for the noisiest share of the steps only (the demo model's recipe).
    guidance_schedule: GuidanceSchedule = field(default_factory=GuidanceSchedule)
    # How ``scale`` reaches the model (families.GuidanceKind).
    guidance_kind: str = "cfg"
    # A transformer-only file's diffusers folder (text encoders, VAE, scheduler).
    base_path: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def family_info(self) -> Family:
        return families.get(self.spec.family)

    @property
    def single_file(self) -> bool:
        return self.path.suffix.lower() in SINGLE_FILE_SUFFIXES

    @property
    def transformer_file(self) -> bool:
        """A transformer alone (safetensors or GGUF), loaded beside ``base_path``."""
        return self.single_file and self.family_info.single_file == "transformer"

    @property
    def quantised(self) -> bool:
        return self.path.suffix.lower() == ".gguf"

    @property
    def size_step(self) -> int:
        return SIZE_STEP if self.family_info.is_sd else TRANSFORMER_SIZE_STEP

    @property
    def min_size(self) -> int:
        low = max(SIZE_MIN, self.family_info.min_size)
        return max(low, self.spec.min_size or low)

    @property
    def max_size(self) -> int:
        high = min(SIZE_MAX, self.family_info.max_size)
        return min(high, self.spec.max_size or high)

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
            return f"{self.path} must be a diffusers folder or a .safetensors/.ckpt/.gguf file"
        elif self.transformer_file:
            label = self.family_info.label
            if self.base_path is None:
                return (f"a {label} transformer file needs a {label} diffusers folder for its "
                        "text encoders and VAE: put one in the models folder, or name one as "
                        "\"base\" in its <file>.ronghe.json")
            if not (self.base_path / "model_index.json").is_file():
                return f"its base {self.base_path} is not a diffusers folder"
        elif self.path.suffix.lower() == ".gguf":
            return f"a GGUF file of {self.family_info.label} (only transformer files are GGUF)"
        for cn, cn_path in self.controlnets.items():
            if not (cn_path / "config.json").is_file():
                return f"ControlNet {cn!r} files are missing at {cn_path}"
        return None


def folder_meta(path: Path) -> dict[str, Any]:
    meta_file = path / "ronghe.json" if path.is_dir() else None
    if meta_file is None or not meta_file.is_file():
        return {}
    try:
        data = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _file_meta(path: Path, family: str) -> dict[str, Any]:
    """A single file's rendering hints: the demo family's own (its native size, steps),
    then its ``<stem>.ronghe.json``."""
    meta: dict[str, Any] = {}
    if family == "demo":
        demo = folder_meta(bundled_path(BUNDLED + "demo"))
        meta.update({k: demo[k] for k in ("native_resolution", "recommended") if k in demo})
    sidecar = path.with_name(path.stem + ".ronghe.json")
    try:
        extra = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    except (OSError, ValueError):
        extra = {}
    if isinstance(extra, dict):
        meta.update(extra)
    return meta


def folder_configs(path: Path | None) -> dict[str, Any]:
    """A diffusers folder's model_index and transformer configs (what tells a flavour)."""
    configs: dict[str, Any] = {"model_index": {}, "transformer": {}}
    if path is None:
        return configs
    for key, file in (("model_index", path / "model_index.json"),
                      ("transformer", path / "transformer" / "config.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            configs[key] = data
    return configs


def transformer_file_configs(path: Path, base: Path | None) -> dict[str, Any]:
    """The base folder's configs, with what the file itself says of its flavour (a FLUX.1
    file with a guidance input is dev, without one schnell, whatever the base is)."""
    configs = folder_configs(base)
    try:
        names = set(checkpoints.tensor_shapes(path))
    except (checkpoints.CheckpointError, OSError):
        return configs
    guided = any(n.endswith("guidance_in.in_layer.weight") or
                 n.endswith("time_text_embed.guidance_embedder.linear_1.weight") for n in names)
    configs["transformer"] = {**configs["transformer"], "guidance_embeds": guided}
    return configs


def make_entry(spec: ImageModelSpec, base_path: Path | None = None) -> ModelEntry:
    path = resolve_path(spec.path)
    family = families.get(spec.family)
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        meta = _file_meta(path, spec.family)
        transformer = family.single_file == "transformer"
        configs = (transformer_file_configs(path, base_path) if transformer
                   else folder_configs(None))
    else:
        meta = folder_meta(path)
        configs = folder_configs(path)
    recommended = meta.get("recommended") or {}
    rec: Recommended = family.recommend(configs)
    native = meta.get("native_resolution")
    steps = (spec.default_steps or recommended.get("num_inference_steps") or rec.steps
             or DEFAULT_STEPS)
    guidance = recommended.get("guidance_scale")
    if not isinstance(guidance, int | float) and not family.is_sd:
        # SD keeps the spec's scale default (7); the newer families' own matter more
        # (FLUX dev's distilled guidance is 3.5, a turbo model's none).
        guidance = rec.guidance
    kind = recommended.get("guidance_kind")
    return ModelEntry(
        spec=spec, path=path,
        controlnets={name: resolve_path(p) for name, p in spec.controlnets.items()},
        native_resolution=int(native) if isinstance(native, int | float) else None,
        default_steps=int(steps),
        recommended_guidance=float(guidance) if isinstance(guidance, int | float) else None,
        meta=meta,
        guidance_schedule=GuidanceSchedule.from_recommended(recommended),
        guidance_kind=kind if kind in ("cfg", "embedded", "none") else rec.guidance_kind,
        base_path=base_path,
    )


class ModelsConfig(Protocol):
    """What the registry reads: ``Settings`` in a server, ``ChildConfig`` in an engine's child
    process."""

    @property
    def image_models(self) -> list[ImageModelSpec]: ...

    @property
    def image_default_model(self) -> str: ...

    @property
    def models_path(self) -> Path | None: ...

    @property
    def loras_path(self) -> Path | None: ...


class ModelRegistry:
    """One per process (``Services.image_models``): a model that failed to load is marked
    broken here, so every later submit and training run in this process fails fast."""

    def __init__(self, settings: ModelsConfig) -> None:
        self.default_name = settings.image_default_model
        self._configured = list(settings.image_models)
        models, loras = settings.models_path, settings.loras_path
        self.folder = ModelsFolder(models, loras or models.parent / "loras") if models else None
        self._specs: list[ImageModelSpec] = []
        self._by_name: dict[str, ImageModelSpec] = {}
        self._entries: dict[str, ModelEntry] = {}
        # name -> why loading failed; set by the pipeline cache, so later submits fail fast.
        self._broken: dict[str, str] = {}
        self._lock = threading.Lock()
        # What the models folder holds (every kind), its image models by name, load
        # failures recorded beside the index (path -> reason), and the index's stamp.
        self.found: list[Found] = []
        self._folder: dict[str, Found] = {}
        self._file_broken: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._install(self.folder.scan() if self.folder else [])

    def _install(self, items: list[Found]) -> None:
        specs = list(self._configured)
        taken = {key for spec in specs for key in (spec.name, *spec.aliases)}
        folder: dict[str, Found] = {}
        for item in items:
            if item.kind != "image" or item.name in taken:
                continue  # a configured model of the same name wins
            family = item.family if item.family in FAMILIES else "sd15"
            specs.append(ImageModelSpec(
                name=item.name, path=item.path, family=family,
                base=str(item.meta.get("base") or ""),
                description=item.description or f"{Path(item.path).name} (models folder)",
                trainable=families.get(family).trainable))
            folder[item.name] = item
            taken.add(item.name)
        by_name: dict[str, ImageModelSpec] = {}
        for spec in specs:
            for key in (spec.name, *spec.aliases):
                by_name.setdefault(key, spec)
        with self._lock:
            self._specs, self._by_name, self._folder, self.found = specs, by_name, folder, items
            self._entries = {name: e for name, e in self._entries.items()
                             if by_name.get(name) == e.spec}
            self._file_broken = self.folder.broken() if self.folder else {}
            self._stamp = self.folder.stamp() if self.folder else None

    def refresh(self) -> None:
        """Re-read the folder's index when a scan or a load failure changed it (a stat)."""
        if self.folder is None or self.folder.stamp() == self._stamp:
            return
        items = self.folder.load()
        self._install(items if items is not None else self.found)

    def scan(self) -> list[Found]:
        """Look at the models folder again; returns everything it holds."""
        if self.folder is None:
            return []
        items = self.folder.scan()
        self._install(items)
        return items

    def names(self) -> list[str]:
        self.refresh()
        return [spec.name for spec in self._specs]

    def choices(self) -> list[str]:
        """Every accepted model_name: names and aliases, in configuration order."""
        self.refresh()
        return list(self._by_name)

    def default_choice(self) -> str:
        """The name clients see as default: the default model's first alias (the spec's
        ``Artist_V0.1.3``) when it has one."""
        spec = self._by_name.get(self.default_name)
        if spec is None:
            return self.default_name
        return spec.aliases[0] if spec.aliases else spec.name

    def find(self, name: str) -> ModelEntry | None:
        self.refresh()
        spec = self._by_name.get(name or self.default_name)
        if spec is None:
            return None
        with self._lock:
            entry = self._entries.get(spec.name)
        if entry is None:
            entry = make_entry(spec, self.base_path(spec))
            with self._lock:
                entry = self._entries.setdefault(spec.name, entry)
        return entry

    def base_path(self, spec: ImageModelSpec) -> Path | None:
        """Where a transformer-only file's other components come from: its ``base`` (a
        model's name or a folder), else the first usable folder model of its family."""
        path = resolve_path(spec.path)
        family = families.get(spec.family)
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES or family.single_file != "transformer":
            return None
        if spec.base:
            named = self._by_name.get(spec.base)
            return resolve_path(named.path) if named is not None else Path(spec.base).expanduser()
        for other in self._specs:
            folder = resolve_path(other.path)
            item = self._folder.get(other.name)
            if (other.family == spec.family and folder.is_dir()
                    and (folder / "model_index.json").is_file()
                    and not (item is not None and item.problem)):
                return folder
        return None

    def entries(self) -> list[ModelEntry]:
        self.refresh()
        return [e for e in (self.find(s.name) for s in self._specs) if e is not None]

    def folder_item(self, entry: ModelEntry) -> Found | None:
        return self._folder.get(entry.name)

    def family_label(self, entry: ModelEntry) -> str:
        """The family to show: a folder model whose family is unknown says so."""
        item = self._folder.get(entry.name)
        return (item.family or "unknown") if item is not None else entry.family

    def file_problem(self, entry: ModelEntry) -> str | None:
        """What the files alone say (missing, truncated, unknown layout), not past loads."""
        item = self._folder.get(entry.name)
        return (item.problem if item else None) or entry.problem()

    def problem(self, entry: ModelEntry) -> str | None:
        """Why the model cannot be used: a failed load, the scan's verdict, missing files."""
        item = self._folder.get(entry.name)
        return (self._broken.get(entry.name) or (item.problem if item else None)
                or self._file_broken.get(str(entry.path)) or entry.problem())

    def get(self, name: str, field: str = "model_name") -> ModelEntry:
        entry = self.find(name)
        if entry is None:
            raise BadRequest(f"{field}: unknown model {name!r}; available: "
                             + ", ".join(self.choices()), field=field)
        return entry

    def check(self, entry: ModelEntry, field: str = "model_name") -> None:
        """Raise a clear error when the model cannot be used (files missing, failed load)."""
        problem = self.problem(entry)
        if problem:
            raise NotReady(f"{field}: model {entry.name!r} cannot be used: {problem}",
                           field=field)

    def mark_broken(self, name: str, reason: str) -> None:
        self._broken[name] = reason
        item = self._folder.get(name)
        if item is not None and self.folder is not None:
            # Beside the index, so `ronghe models` and the other processes see it too.
            self.folder.mark_broken(Path(item.path), reason)

    def mark_loaded(self, name: str) -> None:
        self._broken.pop(name, None)
        item = self._folder.get(name)
        if item is not None and self.folder is not None and item.path in self._file_broken:
            self.folder.clear_broken(Path(item.path))

    def readiness(self) -> tuple[bool, str]:
        entry = self.find(self.default_name)
        if entry is None:
            return False, f"default image model {self.default_name!r} is not configured"
        problem = self.problem(entry)
        if problem:
            return False, f"{entry.name}: {problem}"
        return True, f"{len(self._specs)} image model(s): {', '.join(self.names())}"


def describe(entry: ModelEntry, default: bool = False,
             registry: ModelRegistry | None = None) -> dict[str, Any]:
    """One row for ``ronghe models`` and the listings (problems as ``registry`` knows them)."""
    return {
        "name": entry.name, "aliases": list(entry.spec.aliases),
        "family": registry.family_label(entry) if registry else entry.family,
        "source": "folder" if registry and registry.folder_item(entry) else "config",
        "path": str(entry.path), "single_file": entry.single_file,
        "controlnets": sorted(entry.controlnets), "native_resolution": entry.native_resolution,
        "sizes": f"{entry.min_size}-{entry.max_size}", "default_steps": entry.default_steps,
        "family_label": entry.family_info.label, "size_step": entry.size_step,
        "base": str(entry.base_path) if entry.base_path else None,
        "quantised": entry.quantised,
        "default": default, "problem": registry.problem(entry) if registry else entry.problem(),
    }
