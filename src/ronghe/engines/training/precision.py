"""How a LoRA trains on a device: precision, gradient checkpointing and the optimizer.

A pure function of the family, the device kind and whether bitsandbytes is importable, so
each decision is unit-tested for CPU, CUDA and MPS without the hardware
(tests/engines/training/test_precision.py), as ``engines/diffusion/device.py`` decides for
generation; ``LoraTrainer`` applies it.

- **CPU** trains in float32 throughout with fused AdamW: half precision is slower there, and
  the demo and SD 1.5 numbers stay exactly what they were.
- **Accelerators** train in mixed precision, as diffusers' ``train_dreambooth_lora_*``
  scripts do under ``--mixed_precision``: the frozen base weights in the family's precision
  (``pick_dtype``: SD families float16 on CUDA, FLUX bfloat16; MPS float16), the LoRA
  matrices in float32 (so small updates are not rounded away), the forward pass under
  autocast, and float16 losses scaled (``GradScaler``) so small gradients do not underflow.
  The VAE encodes in float32 where the weights are float16: SDXL's VAE overflows in
  float16, and it only runs once per image (latents are cached).
- **Gradient checkpointing** for the big denoisers (SDXL, FLUX) on accelerators: it trades
  about a third more compute for most of the activation memory, which is what lets a FLUX
  LoRA train at 1024 px on one card.  Small models (the demo, SD 1.5) fit without it.
- **8-bit AdamW** (bitsandbytes) on CUDA when it is installed: the optimizer state shrinks
  to a quarter.  Elsewhere torch's fused AdamW.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

from ronghe.engines.diffusion.device import DtypeName, device_kind, pick_dtype
from ronghe.engines.diffusion.families import Family

Optimizer = Literal["adamw", "adamw8bit"]
# Pipelines of at least this many billion parameters (``Family.params_b``) train with
# gradient checkpointing on an accelerator: SDXL (3.5) and FLUX (16.9), not SD 1.5 (1.07).
CHECKPOINTING_FROM_B = 2.0


@dataclass(frozen=True)
class TrainPrecision:
    # The frozen base weights (denoiser and text encoders).
    weights: DtypeName
    # The VAE that encodes the training images once.
    vae: DtypeName
    # Mixed precision: the forward pass's autocast dtype; None: everything in float32.
    autocast: DtypeName | None
    # float16 needs its loss scaled so that small gradients survive.
    grad_scaler: bool
    gradient_checkpointing: bool
    optimizer: Optimizer

    def describe(self) -> str:
        """One line for logs and the LoRA's sidecar: ``bf16 mixed, checkpointing, adamw8bit``."""
        parts = [f"{_short(self.autocast)} mixed" if self.autocast else "fp32"]
        if self.gradient_checkpointing:
            parts.append("gradient checkpointing")
        parts.append(self.optimizer)
        return ", ".join(parts)


def _short(dtype: str) -> str:
    return {"bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)


def pick_precision(family: Family, device: str, override: str = "auto",
                   bitsandbytes: bool = False) -> TrainPrecision:
    """How a ``family`` LoRA trains on ``device``; ``override`` is ``image_dtype``."""
    kind = device_kind(device)
    dtype = pick_dtype(family, device, override)
    checkpointing = kind != "cpu" and family.params_b >= CHECKPOINTING_FROM_B
    optimizer: Optimizer = "adamw8bit" if kind == "cuda" and bitsandbytes else "adamw"
    if dtype == "float32":
        return TrainPrecision("float32", "float32", None, False, checkpointing, optimizer)
    return TrainPrecision(weights=dtype, vae="float32" if dtype == "float16" else dtype,
                          autocast=dtype, grad_scaler=dtype == "float16",
                          gradient_checkpointing=checkpointing, optimizer=optimizer)


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None
