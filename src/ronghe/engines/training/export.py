"""The trained LoRA as files: diffusers/PEFT safetensors, a kohya copy, and a JSON sidecar.

- ``pytorch_lora_weights.safetensors``: what ``StableDiffusionPipeline.save_lora_weights``
  writes (keys ``unet.….lora.down.weight`` style after diffusers' own conversion), loadable
  by ``pipe.load_lora_weights``; the adapter config travels in the file's metadata.
- ``kohya.safetensors``: ``lora_unet_…_to_q.lora_down.weight`` + ``.alpha`` keys, the format
  AUTOMATIC1111, ComfyUI and kohya's scripts read; converted by diffusers' own
  ``convert_state_dict_to_kohya``.
- ``ronghe-lora.json``: base model, trigger word, rank, alpha, steps and the rest of the run.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
KOHYA_FILE = "kohya.safetensors"
SIDECAR_FILE = "ronghe-lora.json"


def export_files(peft_state: dict[str, torch.Tensor], lora_config: dict[str, Any],
                 alpha: float, sidecar: dict[str, Any]) -> dict[str, bytes]:
    """File name -> bytes for the three outputs."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
    from safetensors.torch import save

    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="ronghe-lora-") as tmp:
        StableDiffusionPipeline.save_lora_weights(
            tmp, unet_lora_layers=convert_state_dict_to_diffusers(peft_state),
            safe_serialization=True, unet_lora_adapter_metadata=_jsonable(lora_config))
        files[DIFFUSERS_FILE] = (Path(tmp) / DIFFUSERS_FILE).read_bytes()

    kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in peft_state.items()})
    # The converter writes alpha = rank; state the trained alpha explicitly instead.
    kohya = {k: (torch.tensor(float(alpha)) if k.endswith(".alpha") else v.contiguous())
             for k, v in kohya.items()}
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(sidecar["rank"]),
            "ss_network_alpha": str(alpha), "ss_base_model_version": "sd_v1",
            "ss_output_name": str(sidecar.get("name", "")),
            "ss_tag_frequency": json.dumps({"trigger_word": sidecar.get("trigger_word", "")})}
    files[KOHYA_FILE] = save(kohya, metadata=meta)
    files[SIDECAR_FILE] = (json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n").encode()
    return files


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    """peft's config dict holds sets (target_modules); safetensors metadata needs JSON."""
    return json.loads(json.dumps(config, default=lambda v: sorted(v) if isinstance(v, set)
                                 else str(v)))
