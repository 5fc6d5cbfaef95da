"""How LoRAs train on each kind of device: precision, checkpointing, optimizer (a pure
decision, so every device kind is covered here without the hardware)."""

from __future__ import annotations

import pytest

from ronghe.engines.diffusion.families import FAMILIES
from ronghe.engines.training.precision import TrainPrecision, pick_precision

FP32 = TrainPrecision("float32", "float32", None, False, False, "adamw")


@pytest.mark.parametrize("family", ["demo", "sd15", "sdxl", "flux"])
def test_cpu_trains_in_float32_with_fused_adamw(family: str) -> None:
    # bitsandbytes present or not: its 8-bit AdamW is a CUDA optimizer.
    for bnb in (False, True):
        assert pick_precision(FAMILIES[family], "cpu", bitsandbytes=bnb) == FP32


def test_cuda_mixed_precision_per_family() -> None:
    sd15 = pick_precision(FAMILIES["sd15"], "cuda")
    assert sd15 == TrainPrecision(weights="float16", vae="float32", autocast="float16",
                                  grad_scaler=True, gradient_checkpointing=False,
                                  optimizer="adamw")
    sdxl = pick_precision(FAMILIES["sdxl"], "cuda:1", bitsandbytes=True)
    # float16 base weights with the loss scaled; the VAE encodes in float32 (it overflows).
    assert sdxl == TrainPrecision("float16", "float32", "float16", True, True, "adamw8bit")
    flux = pick_precision(FAMILIES["flux"], "cuda", bitsandbytes=True)
    # bfloat16 has float32's range: no loss scaling, and the VAE can stay in it.
    assert flux == TrainPrecision("bfloat16", "bfloat16", "bfloat16", False, True,
                                  "adamw8bit")
    assert pick_precision(FAMILIES["flux"], "cuda").optimizer == "adamw"
    assert flux.describe() == "bf16 mixed, gradient checkpointing, adamw8bit"
    assert FP32.describe() == "fp32, adamw"


def test_mps_takes_float16_and_no_8bit_adam() -> None:
    flux = pick_precision(FAMILIES["flux"], "mps", bitsandbytes=True)
    assert flux == TrainPrecision("float16", "float32", "float16", True, True, "adamw")
    assert pick_precision(FAMILIES["demo"], "mps").gradient_checkpointing is False


def test_image_dtype_overrides_as_for_generation() -> None:
    assert pick_precision(FAMILIES["flux"], "cuda", "float32") == TrainPrecision(
        "float32", "float32", None, False, True, "adamw")
    assert pick_precision(FAMILIES["sdxl"], "cuda", "bfloat16").grad_scaler is False
    # CPU never takes float16 (no fast kernels); bfloat16 autocast it may.
    assert pick_precision(FAMILIES["sd15"], "cpu", "float16") == FP32
    assert pick_precision(FAMILIES["sd15"], "cpu", "bfloat16").autocast == "bfloat16"
    with pytest.raises(ValueError, match="image_dtype"):
        pick_precision(FAMILIES["sd15"], "cuda", "float8")
