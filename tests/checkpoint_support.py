"""A diffusers SD 1.x folder as one checkpoint in the original Stable Diffusion key layout.

The inverse of diffusers' single-file conversion (as its
``scripts/convert_diffusers_to_original_stable_diffusion.py`` does), written from the
folder's own configs so it also fits the demo model's smaller UNet (fewer blocks, one layer
per block): ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE),
``cond_stage_model.transformer.*`` (CLIP text encoder).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
          ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
          ("conv_shortcut", "skip_connection")]
UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
            "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
            # SDXL's size/crop conditioning
            "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
VAE_ATTENTION = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
                 ("to_out.0", "proj_out")]


def _config(folder: Path) -> dict[str, object]:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def _resnet(rest: str) -> str:
    for new, old in RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_to_original(state: dict[str, torch.Tensor], config: dict[str, object]
                     ) -> dict[str, torch.Tensor]:
    layers = int(config["layers_per_block"])  # type: ignore[call-overload]
    up_types = list(config["up_block_types"])  # type: ignore[call-overload]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        new: str | None = None
        for diffusers, ldm in UNET_TOP.items():
            if key.startswith(diffusers + "."):
                new = ldm + key[len(diffusers):]
        if new is None and parts[0] == "down_blocks":
            i, what = int(parts[1]), parts[2]
            if what == "downsamplers":  # down_blocks.i.downsamplers.0.conv.X
                new = f"input_blocks.{(i + 1) * (layers + 1)}.0.op.{parts[-1]}"
            else:
                j, rest = int(parts[3]), ".".join(parts[4:])
                index = 1 + i * (layers + 1) + j
                new = (f"input_blocks.{index}.0.{_resnet(rest)}" if what == "resnets"
                       else f"input_blocks.{index}.1.{rest}")
        elif new is None and parts[0] == "mid_block":
            k, rest = int(parts[2]), ".".join(parts[3:])
            new = (f"middle_block.{2 * k}.{_resnet(rest)}" if parts[1] == "resnets"
                   else f"middle_block.1.{rest}")
        elif new is None and parts[0] == "up_blocks":
            i, what = int(parts[1]), parts[2]
            if what == "upsamplers":  # after the block's attention when it has one
                slot = 2 if up_types[i].startswith("CrossAttn") else 1
                new = f"output_blocks.{i * (layers + 1) + layers}.{slot}.conv.{parts[-1]}"
            else:
                j, rest = int(parts[3]), ".".join(parts[4:])
                index = i * (layers + 1) + j
                new = (f"output_blocks.{index}.0.{_resnet(rest)}" if what == "resnets"
                       else f"output_blocks.{index}.1.{rest}")
        if new is None:
            raise KeyError(f"no original-layout name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


def vae_to_original(state: dict[str, torch.Tensor], config: dict[str, object]
                    ) -> dict[str, torch.Tensor]:
    blocks = len(config["up_block_types"])  # type: ignore[arg-type]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        side, rest = key.split(".", 1)
        parts = rest.split(".")
        if parts[0] in ("down_blocks", "up_blocks"):
            i = int(parts[1])
            group = "down" if parts[0] == "down_blocks" else "up"
            index = i if group == "down" else blocks - 1 - i
            if parts[2] in ("downsamplers", "upsamplers"):
                sampler = "downsample" if group == "down" else "upsample"
                new = f"{group}.{index}.{sampler}.conv.{parts[-1]}"
            else:
                tail = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
                new = f"{group}.{index}.block.{parts[3]}.{tail}"
        elif parts[0] == "mid_block":
            tail = ".".join(parts[3:])
            if parts[1] == "resnets":
                tail = tail.replace("conv_shortcut", "nin_shortcut")
                new = f"mid.block_{int(parts[2]) + 1}.{tail}"
            else:
                for diffusers, ldm in VAE_ATTENTION:
                    tail = tail.replace(diffusers + ".", ldm + ".")
                new = f"mid.attn_1.{tail}"
                if value.ndim == 2:  # the original's attention projections are 1x1 convs
                    value = value[:, :, None, None]
        else:
            new = rest.replace("conv_norm_out", "norm_out")
        out["first_stage_model." + (f"{side}.{new}" if side in ("encoder", "decoder")
                                    else key)] = value
    return out


def to_original(folder: Path) -> dict[str, torch.Tensor]:
    """Every weight of an SD 1.x diffusers folder, under its original-layout name."""
    unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    vae = load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")
    text = load_file(folder / "text_encoder" / "model.safetensors")
    state = unet_to_original(unet, _config(folder / "unet"))
    state.update(vae_to_original(vae, _config(folder / "vae")))
    # transformers 5 saves CLIPTextModel without the ``text_model.`` level the original has.
    state.update({"cond_stage_model.transformer." + (k if k.startswith("text_model.")
                                                     else "text_model." + k): v
                  for k, v in text.items()})
    return {k: v.contiguous() for k, v in state.items()}


def write_checkpoint(folder: Path, target: Path) -> Path:
    """``target`` (.safetensors or .ckpt) holding ``folder``'s weights in original layout."""
    state = to_original(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".ckpt":
        torch.save({"state_dict": state, "global_step": 0}, target)
        assert zipfile.is_zipfile(target)
    else:
        save_file(state, target, metadata={"format": "pt"})
    return target
