"""Hyperparameter presets per model family and main_body (documented in docs/training.md).

The ``sd15``, ``sdxl`` and ``flux`` numbers are the usual community starting points for LoRAs
of those families (kohya-ss and diffusers' scripts for SD; ostris' ai-toolkit FLUX config and
diffusers' ``train_dreambooth_lora_flux`` for FLUX).  The ``demo`` numbers are scaled so the
bundled 32x32 demo model learns a new concept in a few minutes on a two-core CPU: it is a
tiny model, so it takes a higher learning rate and far fewer steps.
``alpha`` always equals ``rank`` (LoRA scale 1): a loader that ignores stored alphas (kohya
consumers, diffusers given a bare state dict) then applies the LoRA at the trained strength.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ronghe.engines.diffusion.families import FAMILIES

MAIN_BODIES: tuple[str, ...] = ("Style", "Human", "Architecture", "Plants", "Animals")
TRAINABLE_FAMILIES: tuple[str, ...] = tuple(f.id for f in FAMILIES.values() if f.trainable)
# LoRA on an SD UNet's attention projections: self-attention (attn1) and cross-attention
# (attn2) query, key, value and output layers.  Every family's are its ``lora_targets``.
TARGET_MODULES: tuple[str, ...] = FAMILIES["sd15"].lora_targets


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
    # Flow-matching families (FLUX): how the noise level σ is drawn, diffusers'
    # ``weighting_scheme`` ("none": uniform, as train_dreambooth_lora_flux's default;
    # "logit_normal" and "mode" as SD 3's paper; "sigma_sqrt" and "cosmap" weight the loss).
    weighting_scheme: str = "none"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    # The distilled guidance input FLUX.1 dev is given while training (1, as diffusers'
    # README and kohya-ss train it; generation then takes the usual 3.5).
    train_guidance: float = 1.0

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
# SDXL at its native 1024 px (kohya-ss' usual dim 32 at 1e-4); previews at SDXL's guidance 5.
_SDXL = Preset(rank=32, learning_rate=1e-4, steps=1500, batch_size=1, resolution=1024,
               flip=True, warmup_steps=100, checkpoint_every=100, sample_every=250,
               sample_steps=25, sample_guidance=5.0, buckets=True, caption_tag_dropout=0.1)
# FLUX.1 as ai-toolkit's flux LoRA config: rank 16 at 1e-4, 1024 px buckets, no warm-up,
# previews at 20 steps; uniform σ and training guidance 1 as diffusers' FLUX script.
_FLUX = Preset(rank=16, learning_rate=1e-4, steps=1500, batch_size=1, resolution=1024,
               flip=True, warmup_steps=0, checkpoint_every=100, sample_every=250,
               sample_steps=20, sample_guidance=3.5, buckets=True, caption_tag_dropout=0.1)
_BASES: dict[str, Preset] = {"demo": _DEMO, "sd15": _SD15, "sdxl": _SDXL, "flux": _FLUX}

# How each main_body departs from its family's base preset.  The real families share one
# shape: styles train longest, people without flips (faces are not symmetric), plants least.
_REAL_BODIES: dict[str, dict[str, Any]] = {
    "Style": {"steps": 2000},
    "Human": {"flip": False, "steps": 1800},
    "Architecture": {},
    "Plants": {"steps": 1200},
    "Animals": {},
}
_BODY_CHANGES: dict[str, dict[str, dict[str, Any]]] = {
    "demo": {
        "Style": {"rank": 8, "steps": 360},
        "Human": {"flip": False},
        "Architecture": {},
        "Plants": {},
        "Animals": {},
    },
    # SD 1.5 styles take twice the preset's rank.
    "sd15": {**_REAL_BODIES, "Style": {"rank": 32, "steps": 2000}},
    "sdxl": _REAL_BODIES,
    "flux": _REAL_BODIES,
}


def preset_for(family: str, main_body: str) -> Preset:
    if family not in TRAINABLE_FAMILIES or family not in _BASES:
        raise ValueError(f"no training preset for model family {family!r}")
    return replace(_BASES[family], **_BODY_CHANGES[family][main_body])
