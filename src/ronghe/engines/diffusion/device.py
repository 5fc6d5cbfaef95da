"""Where and how a model runs: precision, offloading and the pipeline cache's budget.

Every decision is a pure function of the family, the device kind and the memory figures, so
each is unit-tested for CPU, CUDA and MPS without the hardware (tests/engines/diffusion/
test_device.py); ``pipelines.PipelineCache`` applies them.

- **Precision**: CPU keeps float32 (half precision is slower there and some ops lack it).
  CUDA runs SD families in float16 and the transformer families in bfloat16, as their
  publishers do; MPS takes float16 (its bfloat16 support is partial).  ``image_dtype``
  overrides, except that CPU never takes float16 (no fast kernels; bfloat16 is allowed).
- **Offload** (``image_offload``): ``none`` keeps the whole pipeline on the GPU; ``model``
  moves each component to it while it runs (diffusers' model CPU offload: the denoiser and
  the text encoders take turns); ``sequential`` streams layer by layer (slowest, smallest).
  ``auto`` picks the fastest that fits the free memory with headroom for activations.
- **Cache budget**: on a GPU the budget for resident models is the device's memory less the
  headroom; on CPU, ``pipeline_memory_budget_mb`` or none (the count limit applies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ronghe.engines.diffusion.families import Family

DtypeName = Literal["float32", "float16", "bfloat16"]
Offload = Literal["none", "model", "sequential"]
OFFLOAD_CHOICES = ("auto", "none", "model", "sequential")
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
GiB = 2**30
# Activations, the VAE decode at 1024 px and the CUDA context need room beside the weights.
HEADROOM_BYTES = int(1.5 * GiB)
# Below this share of the weights on the device at once, model offload cannot work: the
# largest component (the denoiser) must fit whole.
DENOISER_SHARE = {"unet": 0.75, "transformer": 0.7}
# Outputs with more pixels than this decode the VAE in tiles (bounded memory).
VAE_TILING_PIXELS = 1536 * 1536


def device_kind(device: str) -> Literal["cpu", "cuda", "mps"]:
    if device.startswith("cuda"):
        return "cuda"
    return "mps" if device == "mps" else "cpu"


def pick_dtype(family: Family, device: str, override: str = "auto") -> DtypeName:
    """The torch dtype name a ``family`` model runs in on ``device``."""
    kind = device_kind(device)
    if override != "auto":
        if override not in DTYPE_CHOICES:
            raise ValueError(f"image_dtype must be one of {', '.join(DTYPE_CHOICES)}")
        if kind == "cpu" and override == "float16":
            return "float32"
        return override  # type: ignore[return-value]
    if kind == "cpu":
        return "float32"
    if kind == "mps":
        return "float16"
    return family.cuda_dtype


def bytes_per_param(dtype: DtypeName) -> int:
    return 4 if dtype == "float32" else 2


def model_bytes(family: Family, dtype: DtypeName, quantised_bytes: int | None = None) -> int:
    """The weights' size in memory: the family's parameter count in ``dtype``, or what a
    quantised transformer file says plus the rest of the pipeline."""
    full = int(family.params_b * 1e9 * bytes_per_param(dtype))
    if quantised_bytes is None:
        return full
    denoiser = full * DENOISER_SHARE[family.denoiser]
    return int(full - denoiser) + quantised_bytes


@dataclass(frozen=True)
class OffloadChoice:
    mode: Offload
    reason: str


def pick_offload(setting: str, device: str, free_bytes: int | None, needed_bytes: int,
                 denoiser: Literal["unet", "transformer"] = "unet") -> OffloadChoice:
    """How to place a model of ``needed_bytes`` on ``device`` with ``free_bytes`` free."""
    if setting not in OFFLOAD_CHOICES:
        raise ValueError(f"image_offload must be one of {', '.join(OFFLOAD_CHOICES)}")
    if device_kind(device) == "cpu":
        return OffloadChoice("none", "on the CPU the weights are in memory already")
    if setting != "auto":
        return OffloadChoice(setting, "as configured")  # type: ignore[arg-type]
    if free_bytes is None:
        return OffloadChoice("none", "free memory unknown")
    if needed_bytes + HEADROOM_BYTES <= free_bytes:
        return OffloadChoice("none", f"fits: {needed_bytes / GiB:.1f} GiB of "
                                     f"{free_bytes / GiB:.1f} GiB free")
    largest = needed_bytes * DENOISER_SHARE[denoiser]
    if largest + HEADROOM_BYTES <= free_bytes:
        return OffloadChoice("model", f"{needed_bytes / GiB:.1f} GiB does not fit in "
                                      f"{free_bytes / GiB:.1f} GiB; its largest part does")
    return OffloadChoice("sequential", f"even its largest part ({largest / GiB:.1f} GiB) "
                                       f"does not fit in {free_bytes / GiB:.1f} GiB")


def cache_budget(device: str, total_bytes: int | None, setting_mb: int) -> int | None:
    """Bytes the pipeline cache may keep resident; None: no byte limit (count only).

    An explicit ``pipeline_memory_budget_mb`` wins; on a GPU the default is the device's
    memory less the headroom, so a second model is evicted before it would not fit."""
    if setting_mb:
        return setting_mb * 2**20
    if device_kind(device) == "cpu" or not total_bytes:
        return None
    return max(total_bytes - HEADROOM_BYTES, total_bytes // 2)


def vae_tiling(width: int, height: int, batch: int) -> tuple[bool, bool]:
    """(tiling, slicing): tile large outputs, slice batches, so the decode's memory is
    bounded by a tile and one image."""
    return width * height > VAE_TILING_PIXELS, batch > 1


def cuda_memory(device: str) -> tuple[int | None, int | None]:
    """(free, total) bytes of a CUDA device, (None, None) elsewhere."""
    if device_kind(device) != "cuda":
        return None, None
    import torch

    if not torch.cuda.is_available():
        return None, None
    index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    return int(free), int(total)
