"""The trained LoRA as files: diffusers/PEFT safetensors, a kohya copy, and a JSON sidecar.

- ``pytorch_lora_weights.safetensors``: what the family's pipeline ``save_lora_weights``
  writes, loadable by ``pipe.load_lora_weights`` (the image engine loads this one): for SD
  and SDXL ``unet.….lora.down.weight`` style keys after diffusers' own conversion, as
  diffusers' SD and SDXL LoRA scripts save them; for FLUX ``transformer.….lora_A.weight``,
  as ``train_dreambooth_lora_flux`` saves them.  The adapter config travels in the file's
  metadata.
- ``kohya.safetensors``: the format AUTOMATIC1111, Forge, ComfyUI and kohya's scripts read.
  SD and SDXL: ``lora_unet_…_to_q.lora_down.weight`` + ``.alpha`` keys, converted by
  diffusers' own ``convert_state_dict_to_kohya``.  FLUX: the original (BFL) layout of
  kohya's FLUX LoRAs, whose fused projections (a double block's ``img_attn_qkv``, a single
  block's ``linear1`` = q, k, v and the MLP's input) take the separately trained q, k and v
  LoRAs as one LoRA of n times the rank: the downs stacked, the ups block-diagonal, alpha
  times n, so each part's update is exactly the trained one (``flux_to_kohya``).
- ``ronghe-lora.json``: base model, trigger word, rank, alpha, steps and the rest of the run.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ronghe.engines.diffusion import families
from ronghe.engines.diffusion.families import TXT2IMG

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
KOHYA_FILE = "kohya.safetensors"
SIDECAR_FILE = "ronghe-lora.json"
# kohya's ss_base_model_version per family, as its scripts write it.
BASE_VERSIONS = {"demo": "sd_v1", "sd15": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0",
                 "flux": "flux1"}
# FLUX's fused projections in the original layout: kohya name -> the diffusers modules whose
# outputs it stacks (None: a part without a LoRA here, the single block's MLP input, whose
# width is 4 times the attention's).
_FLUX_DOUBLE = {"img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
                "img_attn_proj": ("attn.to_out.0",),
                "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
                "txt_attn_proj": ("attn.to_add_out",)}
_FLUX_SINGLE = {"linear1": ("attn.to_q", "attn.to_k", "attn.to_v", None)}
FLUX_MLP_RATIO = 4


def export_files(peft_state: dict[str, torch.Tensor], lora_config: dict[str, Any],
                 alpha: float, sidecar: dict[str, Any], family: str = "demo") -> dict[str, bytes]:
    """File name -> bytes for the three outputs of a LoRA on a ``family`` model."""
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
    from safetensors.torch import save

    info = families.get(family)
    pipeline = info.pipeline_class(TXT2IMG)
    # SD and SDXL store diffusers' older LoRA naming, as their scripts do; FLUX the peft one.
    layers = convert_state_dict_to_diffusers(peft_state) if info.is_sd else peft_state
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="ronghe-lora-") as tmp:
        pipeline.save_lora_weights(tmp, safe_serialization=True, **{
            f"{info.denoiser}_lora_layers": layers,
            f"{info.denoiser}_lora_adapter_metadata": _jsonable(lora_config)})
        files[DIFFUSERS_FILE] = (Path(tmp) / DIFFUSERS_FILE).read_bytes()

    if info.is_sd:
        kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in peft_state.items()})
        # The converter writes alpha = rank; state the trained alpha explicitly instead.
        kohya = {k: (torch.tensor(float(alpha)) if k.endswith(".alpha") else v.contiguous())
                 for k, v in kohya.items()}
        module = "networks.lora"
    else:
        kohya = flux_to_kohya(peft_state, alpha)
        module = "networks.lora_flux"
    meta = {"ss_network_module": module, "ss_network_dim": str(sidecar["rank"]),
            "ss_network_alpha": str(alpha),
            "ss_base_model_version": BASE_VERSIONS.get(family, family),
            "ss_output_name": str(sidecar.get("name", "")),
            "ss_tag_frequency": json.dumps({"trigger_word": sidecar.get("trigger_word", "")})}
    files[KOHYA_FILE] = save(kohya, metadata=meta)
    files[SIDECAR_FILE] = (json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n").encode()
    return files


def flux_to_kohya(peft_state: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """A FLUX.1 transformer LoRA (peft naming) in kohya's original-layout naming.

    A fused projection's parts each carry a rank-r LoRA (A: r x in, B: out x r); together
    they are one LoRA of rank n·r whose down is the As stacked and whose up has each B on
    its own rows and columns, zeros elsewhere, with alpha n·α: scale n·α / n·r = α / r,
    so every part's update B·A·α/r is the trained one and the rest of the output is
    untouched.  Loaders (diffusers, ComfyUI, Forge) take the block-diagonal up apart again."""
    blocks: dict[tuple[str, int], None] = {}
    for key in peft_state:
        found = re.match(r"(transformer_blocks|single_transformer_blocks)\.(\d+)\.", key)
        if found:
            blocks[(found.group(1), int(found.group(2)))] = None
    out: dict[str, torch.Tensor] = {}
    for kind, index in blocks:
        double = kind == "transformer_blocks"
        table = _FLUX_DOUBLE if double else _FLUX_SINGLE
        for name, parts in table.items():
            prefix = f"{kind}.{index}."
            fused = _fuse(peft_state, [prefix + p if p else None for p in parts])
            if fused is None:
                continue
            down, up = fused
            key = f"lora_unet_{'double' if double else 'single'}_blocks_{index}_{name}"
            out[f"{key}.lora_down.weight"] = down.contiguous()
            out[f"{key}.lora_up.weight"] = up.contiguous()
            out[f"{key}.alpha"] = torch.tensor(float(alpha) * len(parts))
    return out


def _fuse(state: dict[str, torch.Tensor],
          parts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(down, up) of the LoRA on the stacked outputs of ``parts``; None if none is trained."""
    present = [(state.get(f"{p}.lora_A.weight"), state.get(f"{p}.lora_B.weight"))
               if p else (None, None) for p in parts]
    trained = [(a, b) for a, b in present if a is not None and b is not None]
    if not trained:
        return None
    rank, width = trained[0][0].shape
    attention = trained[0][1].shape[0]
    downs, ups = [], []
    for part, (a, b) in zip(parts, present, strict=True):
        # A part without a LoRA: zero rows in the down, its outputs' rows zero in the up
        # (the MLP input of a single block is FLUX_MLP_RATIO times the attention's width).
        rows = attention * FLUX_MLP_RATIO if part is None else attention
        downs.append(a if a is not None else torch.zeros(rank, width))
        ups.append(b if b is not None else torch.zeros(rows, rank))
    return torch.cat(downs), torch.block_diag(*ups)


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    """peft's config dict holds sets (target_modules); safetensors metadata needs JSON."""
    return json.loads(json.dumps(config, default=lambda v: sorted(v) if isinstance(v, set)
                                 else str(v)))
