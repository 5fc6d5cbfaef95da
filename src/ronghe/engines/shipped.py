"""Where the demo models that ship inside the package lie: the image model, its ControlNets
and the captioner, in ``src/ronghe/models/``.

The server only loads these folders; the code that builds, evaluates and scores them is a
development tool outside the package (``tools/demo_models``, docs/demo-model.md).
"""

from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "models"


def default_model_path() -> Path:
    """The shipped demo model (a diffusers folder StableDiffusionPipeline loads)."""
    return MODELS / "demo"


def default_controlnet_path(kind: str = "canny") -> Path:
    """A shipped ControlNet for the demo model: ``canny``, ``brightness`` or ``tile``."""
    return MODELS / f"demo-controlnet-{kind}"


def default_captioner_path() -> Path:
    """The shipped captioner (a folder ``pipeline("image-to-text")`` loads)."""
    return MODELS / "demo-captioner"
