"""Hyperparameter presets per model family and main_body (documented in docs/training.md).

The ``sd15`` numbers are the usual community starting points for SD 1.5 LoRAs.  The ``demo``
numbers are scaled so the bundled 32x32 demo model learns a new concept in a few minutes on
a two-core CPU: it is a tiny model, so it takes a higher learning rate and far fewer steps.
``alpha`` always equals ``rank`` (LoRA scale 1): a loader that ignores stored alphas (kohya
consumers, diffusers given a bare state dict) then applies the LoRA at the trained strength.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

MAIN_BODIES: tuple[str, ...] = ("Style", "Human", "Architecture", "Plants", "Animals")
TRAINABLE_FAMILIES: tuple[str, ...] = ("demo", "sd15")
# LoRA on the UNet's attention projections: self-attention (attn1) and cross-attention
# (attn2) query, key, value and output layers.
TARGET_MODULES: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass(frozen=True)
class Preset:
    rank: int
    learning_rate: float
    steps: int
    batch_size: int
    resolution: int
    # Horizontal flips double the data; off where left and right matter (faces, hair).
    flip: bool
    warmup_steps: int
    checkpoint_every: int
    sample_every: int
    sample_steps: int
    sample_guidance: float
    # Share of samples trained as "empty caption -> the base model's own prediction", which
    # keeps classifier-free guidance working (see LoraTrainer._keep_unconditional).
    keep_unconditional: float = 0.0
    # Aspect-ratio buckets for non-square datasets (engines/training/data.py); off: every
    # image is centre-cropped to a square.
    buckets: bool = False
    # Share of samples trained on the caption's first comma-separated part alone (the
    # trigger and class word), kohya's caption_tag_dropout_rate with keep_tokens=1: the
    # trigger then carries the concept by itself, not only beside the description.
    caption_tag_dropout: float = 0.0

    @property
    def alpha(self) -> float:
        return float(self.rank)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alpha": self.alpha}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


_DEMO = Preset(rank=4, learning_rate=5e-3, steps=300, batch_size=8, resolution=32, flip=True,
               warmup_steps=20, checkpoint_every=25, sample_every=100, sample_steps=20,
               sample_guidance=5.0, keep_unconditional=0.25, caption_tag_dropout=0.3)
_SD15 = Preset(rank=16, learning_rate=1e-4, steps=1500, batch_size=1, resolution=512, flip=True,
               warmup_steps=100, checkpoint_every=100, sample_every=250, sample_steps=25,
               sample_guidance=7.0, buckets=True, caption_tag_dropout=0.1)

# How each main_body departs from its family's base preset.
_BODY_CHANGES: dict[str, dict[str, dict[str, Any]]] = {
    "demo": {
        "Style": {"rank": 8, "steps": 360},
        "Human": {"flip": False},
        "Architecture": {},
        "Plants": {},
        "Animals": {},
    },
    "sd15": {
        "Style": {"rank": 32, "steps": 2000},
        "Human": {"flip": False, "steps": 1800},
        "Architecture": {},
        "Plants": {"steps": 1200},
        "Animals": {},
    },
}


def preset_for(family: str, main_body: str) -> Preset:
    if family not in TRAINABLE_FAMILIES:
        raise ValueError(f"no training preset for model family {family!r}")
    base = _DEMO if family == "demo" else _SD15
    return replace(base, **_BODY_CHANGES[family][main_body])
