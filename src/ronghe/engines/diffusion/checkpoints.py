"""What a checkpoint file is, read from its tensor names and shapes only, never its weights.

A ``.safetensors`` file starts with a JSON header (names, shapes, byte ranges), so one small
read tells its layout and whether the file is complete.  A ``.ckpt`` is a zip holding a
pickle; its pickle is read with an unpickler that builds nothing but shapes (no code from the
file runs, no tensor data is read).

A ``.gguf`` file's tensor names come from its header (the ``gguf`` package), so a quantised
transformer (FLUX, Z-Image ...) is told from a chat model the same way.

``file_family`` tells a file's family: a transformer family's transformer file by its keys
(``families.transformer_file_family``), else SD 1.5, SD 2.x, SDXL and the demo model by the
original Stable Diffusion key layout and the cross-attention width (``image_family``);
``lora_family`` does the same for LoRA files (kohya, diffusers or the original layout).
Anything else is a ``CheckpointError`` that says why.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ronghe.engines.diffusion import families

Shapes = dict[str, tuple[int, ...]]

# A header larger than this is not a checkpoint's (SDXL's is ~200 KB).
MAX_HEADER_BYTES = 100 * 2**20
UNET = "model.diffusion_model."
SD1_TEXT = "cond_stage_model.transformer."
SD2_TEXT = "cond_stage_model.model."
SDXL_TEXT = "conditioner.embedders."
# Cross-attention width (the text encoder's hidden size) of each family's UNet.
CONTEXT_WIDTH = {768: "sd15", 1024: "sd2", 2048: "sdxl"}
_TO_K = re.compile(r"attn2[._]to_k")


class CheckpointError(ValueError):
    """The file is unreadable, incomplete, or of a layout this server cannot load."""


def safetensors_shapes(path: Path) -> tuple[Shapes, dict[str, str]]:
    """(name -> shape, metadata) from a safetensors header; checks the file is complete."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path.name}: truncated ({size} bytes, no safetensors header)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise CheckpointError(f"{path.name}: truncated or not a safetensors file (its "
                                  f"header claims {length} bytes, the file has {size})")
        try:
            header = json.loads(fh.read(length))
        except ValueError as exc:
            raise CheckpointError(f"{path.name}: damaged safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name}: damaged safetensors header")
    metadata = header.pop("__metadata__", None) or {}
    shapes: Shapes = {}
    end = 0
    for name, info in header.items():
        try:
            shapes[name] = tuple(int(d) for d in info["shape"])
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise CheckpointError(f"{path.name}: damaged safetensors header "
                                  f"(entry {name!r})") from None
    if 8 + length + end > size:
        raise CheckpointError(f"{path.name}: truncated: its tensors need {8 + length + end} "
                              f"bytes, the file has {size} (an interrupted copy or download?)")
    return shapes, {str(k): str(v) for k, v in metadata.items()}


class _Shape:
    """What the restricted unpickler returns for a tensor: only its shape."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


def _rebuild_tensor(_storage: Any, _offset: Any, size: Any, *_rest: Any) -> _Shape:
    return _Shape(tuple(int(d) for d in size))


class _Opaque:
    """Stands for any other class a checkpoint pickles (optimizer state, config objects)."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __setstate__(self, _state: Any) -> None:
        pass


class _ShapeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in ("_rebuild_tensor_v2", "_rebuild_tensor") and module == "torch._utils":
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch", "Size"):
            return tuple
        return _Opaque

    def persistent_load(self, pid: Any) -> None:
        return None  # the storage: its bytes stay in the zip, unread


def ckpt_shapes(path: Path) -> Shapes:
    """name -> shape of a zip-format torch checkpoint, from its pickle alone."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if not pickles:
                raise CheckpointError(f"{path.name}: not a torch checkpoint (no data.pkl)")
            data = archive.read(pickles[0])
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path.name}: truncated or not a zip-format torch checkpoint "
                              f"({exc}); old pickle-only .ckpt files are not read: convert "
                              "them to .safetensors") from None
    try:
        root = _ShapeUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # any malformed pickle is a damaged file, never a crash
        raise CheckpointError(f"{path.name}: damaged checkpoint pickle ({exc})") from None
    if isinstance(root, Mapping) and isinstance(root.get("state_dict"), Mapping):
        root = root["state_dict"]
    if not isinstance(root, Mapping):
        raise CheckpointError(f"{path.name}: holds no state dict")
    return {str(k): v.shape for k, v in root.items() if isinstance(v, _Shape)}


def gguf_shapes(path: Path) -> Shapes:
    """name -> shape of a GGUF file's tensors, from its header (the data is memory-mapped,
    never read).  Shapes are in torch's order (GGUF stores them reversed)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # truncated or not GGUF: one file's problem, never the scan's
        raise CheckpointError(f"{path.name}: truncated or not a GGUF file "
                              f"({type(exc).__name__}: {exc})"[:300]) from None
    return {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}


def tensor_shapes(path: Path) -> Shapes:
    """name -> shape of a .safetensors, .gguf or .ckpt file."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return safetensors_shapes(path)[0]
    if suffix == ".gguf":
        return gguf_shapes(path)
    if suffix in (".ckpt", ".pt", ".pth"):
        return ckpt_shapes(path)
    raise CheckpointError(f"{path.name}: not a .safetensors, .gguf or .ckpt file")


def file_family(shapes: Shapes, demo: tuple[int, int] | None = None) -> str:
    """The family of a model file: a transformer family's transformer file, else a whole
    Stable Diffusion checkpoint (``image_family``)."""
    transformer = families.transformer_file_family(shapes)
    if transformer is not None:
        return transformer.id
    return image_family(shapes, demo)


def label(family_id: str) -> str:
    family = families.FAMILIES.get(family_id)
    return family.label if family else family_id


def _context_width(shapes: Shapes, prefix: str = "") -> int | None:
    """The input width of the first cross-attention key projection (its text width)."""
    for name, shape in shapes.items():
        if name.startswith(prefix) and _TO_K.search(name) and len(shape) == 2:
            return shape[1]
    return None


def image_family(shapes: Shapes, demo: tuple[int, int] | None = None) -> str:
    """demo, sd15, sd2 or sdxl from an original-layout checkpoint's keys.

    ``demo``: the demo model's (cross-attention width, input channels), which are unlike any
    real family's, so its converted single file is told apart from SD 1.5."""
    names = list(shapes)
    if not any(n.startswith(UNET) for n in names):
        if any(n.startswith(("lora_unet_", "lora_te")) or ".lora" in n or "lora_A" in n
               for n in names):
            raise CheckpointError("this is a LoRA, not a model: put it in <data_dir>/loras/")
        if any(n.startswith(("down_blocks.", "unet.", "mid_block.")) for n in names):
            raise CheckpointError("diffusers-format weights: drop the whole diffusers folder "
                                  "(with model_index.json) instead of one file")
        raise CheckpointError("neither a Stable Diffusion checkpoint (no "
                              "model.diffusion_model.* UNet keys) nor a transformer file of "
                              "FLUX.1, FLUX.2, SD 3.x or Z-Image: an unknown layout")
    width = _context_width(shapes, UNET)
    channels = shapes.get(UNET + "input_blocks.0.0.weight", (0, 0))[1:2]
    in_channels = channels[0] if channels else 0
    if in_channels not in (3, 4):
        raise CheckpointError(f"its UNet takes {in_channels} input channels (an inpainting "
                              "or depth model?); only text-to-image checkpoints load")
    if demo is not None and (width, in_channels) == demo:
        family = "demo"
    elif width is None or width not in CONTEXT_WIDTH:
        raise CheckpointError(f"its UNet's cross-attention width is {width}, which is none "
                              "of SD 1.5 (768), SD 2.x (1024) or SDXL (2048): unknown layout")
    else:
        family = CONTEXT_WIDTH[width]
    text = {"demo": SD1_TEXT, "sd15": SD1_TEXT, "sd2": SD2_TEXT, "sdxl": SDXL_TEXT}[family]
    if not any(n.startswith(text) for n in names):
        raise CheckpointError(f"a {label(family)} UNet without its text encoder "
                              f"(no {text}* keys): only full checkpoints load")
    if family == "sdxl" and not any(n.startswith(SDXL_TEXT + "1.") for n in names):
        raise CheckpointError("an SDXL checkpoint with one text encoder (the refiner?); "
                              "only SDXL base-style checkpoints load")
    if not any(n.startswith("first_stage_model.") for n in names):
        raise CheckpointError(f"a {label(family)} checkpoint without its VAE "
                              "(no first_stage_model.* keys)")
    return family


def lora_family(shapes: Shapes, demo_width: int | None = None) -> str:
    """The base family a LoRA was trained for: a transformer family by its key names, an SD
    family by its cross-attention (or text) widths."""
    names = list(shapes)
    if not any("lora" in n.lower() for n in names):
        raise CheckpointError("no LoRA weights in it (no lora_* keys)")
    transformer = families.lora_transformer_family(names)
    if transformer is not None:
        return transformer.id
    downs = {n: s for n, s in shapes.items()
             if n.endswith(("lora_down.weight", "lora.down.weight", "lora_A.weight"))}
    width = _context_width(downs)
    if width is not None:
        if width == demo_width:
            return "demo"
        if width in CONTEXT_WIDTH:
            return CONTEXT_WIDTH[width]
        raise CheckpointError(f"its cross-attention width is {width}: no known base family")
    if any(n.startswith(("lora_te2_", "lora_te_2", "text_encoder_2.")) for n in names):
        return "sdxl"
    for name, shape in downs.items():
        if ("lora_te" in name or name.startswith("text_encoder.")) and len(shape) == 2:
            if shape[1] == demo_width:
                return "demo"
            if shape[1] in CONTEXT_WIDTH:
                return CONTEXT_WIDTH[shape[1]]
    raise CheckpointError("cannot tell which base family this LoRA is for; say it in a "
                          "<file>.ronghe.json beside it: {\"family\": \"sd15\"}")
