"""Checkpoint families from tensor names and shapes alone, and the shipped offline configs."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ronghe.engines.diffusion import checkpoints, configs, library
from ronghe.engines.diffusion.checkpoints import CheckpointError
from tests.checkpoint_support import unet_to_original, write_checkpoint

DEMO = library.demo_signature()


@functools.cache
def meta_unet(family: str) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """The shipped config's UNet on the meta device: every key and shape, no memory."""
    from diffusers import UNet2DConditionModel

    config = dict(UNet2DConditionModel.load_config(configs.config_dir(family) / "unet"))
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    return unet.state_dict(), config


def original_layout(family: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes a real checkpoint of ``family`` has (UNet in full; a few text
    encoder and VAE keys, which is what detection looks at)."""
    state, config = meta_unet(family)
    shapes = {k: tuple(v.shape) for k, v in unet_to_original(state, config).items()}
    text = {"sd15": "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
            "sd2": "cond_stage_model.model.token_embedding.weight",
            "sdxl": "conditioner.embedders.1.model.token_embedding.weight"}[family]
    shapes[text] = (49408, 768)
    if family == "sdxl":
        shapes["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"] = (768,)
    shapes["first_stage_model.decoder.conv_out.weight"] = (3, 128, 3, 3)
    return shapes


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_shipped_config_matches_real_checkpoints_of_its_family(family: str) -> None:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    state, config = meta_unet(family)
    original = unet_to_original(state, config)
    # diffusers' own single-file conversion maps a checkpoint of this layout back onto every
    # UNet weight the shipped config builds: the config fits the family's checkpoints.
    back = convert_ldm_unet_checkpoint(original, config)
    assert set(back) == set(state)
    assert all(back[k].shape == state[k].shape for k in state)
    assert checkpoints.image_family(original_layout(family), DEMO) == family


def test_shipped_configs_build_the_known_models_offline() -> None:
    """Parameter counts of SD 1.5, SD 2.1 and SDXL base, built from the shipped JSON on the
    meta device (no weights, no hub)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    expected = {"sd15": (859_520_964, [123_060_480]), "sd2": (865_910_724, [340_387_840]),
                "sdxl": (2_567_463_684, [123_060_480, 694_659_840])}
    for family, (unet_params, text_params) in expected.items():
        folder = configs.config_dir(family)
        with torch.device("meta"):
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
            texts = [(CLIPTextModelWithProjection if name.endswith("_2") else CLIPTextModel)(
                CLIPTextConfig.from_pretrained(folder / name, local_files_only=True))
                for name in ("text_encoder", "text_encoder_2") if (folder / name).is_dir()]
        assert sum(t.numel() for t in meta_unet(family)[0].values()) == unet_params, family
        assert count(vae) == 83_653_863
        assert [count(t) for t in texts] == text_params, family
        index = json.loads((folder / "model_index.json").read_text())
        assert set(configs.single_file_kwargs(family)) == {
            "config", "local_files_only", *configs.tokenizer_names(family)}
        assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]


def test_shipped_tokenizers_are_clips() -> None:
    sdxl = configs.single_file_kwargs("sdxl")
    first, second = sdxl["tokenizer"], sdxl["tokenizer_2"]
    # CLIP's ids for "a photo of a cat" (openai/clip-vit-large-patch14's vocabulary)
    assert first("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert second("A Photo of a CAT").input_ids == first("a photo of a cat").input_ids
    assert (len(first), first.model_max_length) == (49408, 77)
    assert first.pad_token == "<|endoftext|>" and second.pad_token == "!"
    assert configs.single_file_kwargs("sd2")["tokenizer"].pad_token == "!"


def test_demo_single_file_is_told_from_sd15(tmp_path: Path, demo_model) -> None:
    target = write_checkpoint(demo_model.path, tmp_path / "demo.safetensors")
    shapes, metadata = checkpoints.safetensors_shapes(target)
    assert checkpoints.image_family(shapes, DEMO) == "demo"
    assert metadata == {"format": "pt"}
    ckpt = write_checkpoint(demo_model.path, tmp_path / "demo.ckpt")
    assert checkpoints.ckpt_shapes(ckpt) == shapes  # from the pickle, no tensor read


def test_truncated_and_foreign_files_say_why(tmp_path: Path, demo_model) -> None:
    whole = write_checkpoint(demo_model.path, tmp_path / "whole.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoints.safetensors_shapes(cut)
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoints.safetensors_shapes(tmp_path / "tiny.safetensors")
    ckpt = write_checkpoint(demo_model.path, tmp_path / "whole.ckpt")
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated or not a zip"):
        checkpoints.ckpt_shapes(tmp_path / "cut.ckpt")

    save_file({"weight": torch.zeros(2, 2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="unknown layout"):
        checkpoints.image_family(checkpoints.safetensors_shapes(
            tmp_path / "other.safetensors")[0], DEMO)
    odd = original_layout("sd15")
    odd = {k: (v[0], 512) if "attn2.to_k" in k else v for k, v in odd.items()}
    with pytest.raises(CheckpointError, match="cross-attention width is 512"):
        checkpoints.image_family(odd, DEMO)
    inpaint = {**original_layout("sd15"),
               "model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)}
    with pytest.raises(CheckpointError, match="9 input channels"):
        checkpoints.image_family(inpaint, DEMO)
    lora = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)}
    with pytest.raises(CheckpointError, match="a LoRA, not a model"):
        checkpoints.image_family(lora, DEMO)


def test_lora_family_from_cross_attention_width() -> None:
    assert checkpoints.lora_family({
        "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":
            (8, 768)}) == "sd15"
    assert checkpoints.lora_family({
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight":
            (4, 2048)}) == "sdxl"
    assert checkpoints.lora_family({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down"
                                    ".weight": (4, 1280)}) == "sdxl"
    assert checkpoints.lora_family({
        "x.attn2.to_k.lora_A.weight": (4, DEMO[0])}, demo_width=DEMO[0]) == "demo"
    with pytest.raises(CheckpointError, match="cannot tell"):
        checkpoints.lora_family({"lora_unet_conv_in.lora_down.weight": (4, 4, 3, 3)})
