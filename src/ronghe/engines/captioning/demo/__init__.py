"""The bundled demo captioner: a tiny image-to-text model of the demo image model's world."""

from __future__ import annotations

from pathlib import Path

_MODELS = Path(__file__).resolve().parents[3] / "models"


def default_captioner_path() -> Path:
    """The shipped captioner (a folder ``pipeline("image-to-text")`` loads)."""
    return _MODELS / "demo-captioner"
