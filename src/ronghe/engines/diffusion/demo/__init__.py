"""The bundled demo image model: a tiny SD-architecture model trained on shapes."""

from __future__ import annotations

from pathlib import Path

_MODELS = Path(__file__).resolve().parents[3] / "models"


def default_model_path() -> Path:
    """The shipped demo model (a diffusers folder StableDiffusionPipeline loads)."""
    return _MODELS / "demo"


def default_controlnet_path(kind: str = "canny") -> Path:
    """A shipped ControlNet for the demo model: ``canny``, ``brightness`` or ``tile``."""
    return _MODELS / f"demo-controlnet-{kind}"
