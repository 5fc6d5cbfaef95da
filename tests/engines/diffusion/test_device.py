"""Precision, offload and cache-budget decisions for each device kind (no hardware needed)."""

from __future__ import annotations

import pytest

from ronghe.engines.diffusion import device
from ronghe.engines.diffusion.families import FAMILIES

GiB = device.GiB


@pytest.mark.parametrize(("family", "cuda", "mps"), [
    ("sd15", "float16", "float16"), ("sd2", "float16", "float16"),
    ("sdxl", "float16", "float16"), ("flux", "bfloat16", "float16"),
    ("sd3", "bfloat16", "float16"), ("zimage", "bfloat16", "float16"),
    ("flux2", "bfloat16", "float16")])
def test_precision_per_family_and_device(family: str, cuda: str, mps: str) -> None:
    f = FAMILIES[family]
    assert device.pick_dtype(f, "cpu") == "float32"
    assert device.pick_dtype(f, "cuda") == cuda
    assert device.pick_dtype(f, "cuda:1") == cuda
    assert device.pick_dtype(f, "mps") == mps


def test_a_configured_precision_wins_except_half_on_cpu() -> None:
    flux = FAMILIES["flux"]
    assert device.pick_dtype(flux, "cuda", "float32") == "float32"
    assert device.pick_dtype(FAMILIES["sd15"], "cuda", "bfloat16") == "bfloat16"
    assert device.pick_dtype(flux, "cpu", "bfloat16") == "bfloat16"
    # No fast float16 kernels on a CPU: it would be slower and some ops are missing.
    assert device.pick_dtype(flux, "cpu", "float16") == "float32"
    with pytest.raises(ValueError, match="image_dtype must be one of"):
        device.pick_dtype(flux, "cuda", "int8")


def test_auto_offload_picks_the_fastest_mode_that_fits() -> None:
    sdxl = device.model_bytes(FAMILIES["sdxl"], "float16")
    assert 6 * GiB < sdxl < 7 * GiB
    # An 80 GB card holds everything; a 12 GB card holds SDXL whole.
    assert device.pick_offload("auto", "cuda", 79 * GiB, sdxl).mode == "none"
    assert device.pick_offload("auto", "cuda", 12 * GiB, sdxl).mode == "none"
    # 8 GB: the pipeline does not fit with headroom, its UNet (about 3/4) does.
    choice = device.pick_offload("auto", "cuda", 8 * GiB, sdxl)
    assert choice.mode == "model" and "does not fit" in choice.reason
    assert device.pick_offload("auto", "cuda", 4 * GiB, sdxl).mode == "sequential"
    # FLUX in bf16 (~34 GB) on an 8 GB card: only layer-by-layer streaming fits.
    flux = device.model_bytes(FAMILIES["flux"], "bfloat16")
    assert 30 * GiB < flux < 40 * GiB
    assert device.pick_offload("auto", "cuda", 8 * GiB, flux, "transformer").mode == \
        "sequential"
    assert device.pick_offload("auto", "cuda", 32 * GiB, flux, "transformer").mode == "model"
    assert device.pick_offload("auto", "cuda", 79 * GiB, flux, "transformer").mode == "none"


def test_configured_offload_and_other_devices() -> None:
    assert device.pick_offload("sequential", "cuda", 79 * GiB, GiB).mode == "sequential"
    assert device.pick_offload("model", "cuda:0", None, GiB).mode == "model"
    # The CPU holds the weights in memory already; MPS with unknown free memory keeps all.
    assert device.pick_offload("sequential", "cpu", None, GiB).mode == "none"
    assert device.pick_offload("auto", "mps", None, GiB).mode == "none"
    with pytest.raises(ValueError, match="image_offload must be one of"):
        device.pick_offload("disk", "cuda", GiB, GiB)


def test_a_quantised_transformer_shrinks_the_estimate() -> None:
    flux = FAMILIES["flux"]
    full = device.model_bytes(flux, "bfloat16")
    q4 = device.model_bytes(flux, "bfloat16", quantised_bytes=7 * GiB)
    # The 12B transformer in 7 GB beside the text encoders in bf16 (~10 GB).
    assert 16 * GiB < q4 < 17 * GiB < full
    assert device.pick_offload("auto", "cuda", 24 * GiB, q4, "transformer").mode == "none"


def test_cache_budget_comes_from_the_device() -> None:
    assert device.cache_budget("cpu", None, 0) is None  # the count limit only
    assert device.cache_budget("cpu", None, 4096) == 4096 * 2**20
    assert device.cache_budget("cuda", 80 * GiB, 0) == 80 * GiB - device.HEADROOM_BYTES
    assert device.cache_budget("cuda", 2 * GiB, 0) == GiB  # never under half the card
    assert device.cache_budget("cuda", 80 * GiB, 1024) == 1024 * 2**20  # setting wins


def test_vae_tiles_large_outputs_and_slices_batches() -> None:
    assert device.vae_tiling(1024, 1024, 1) == (False, False)
    assert device.vae_tiling(2048, 2048, 1) == (True, False)
    assert device.vae_tiling(512, 512, 4) == (False, True)
