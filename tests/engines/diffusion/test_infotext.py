"""A1111's parameters text: written in its shape, parsed as its PNG Info tab parses it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import save

from ronghe.engines.diffusion.infotext import (
    format_parameters,
    lora_hash,
    parse_parameters,
    settings,
    short_hash,
    split_loras,
)


def test_the_written_text_has_a1111s_order_and_quoting() -> None:
    meta = {"prompt": "a cat, sitting", "negative_prompt": "dog", "steps": 20,
            "sampler_name": "DPM++ 2M", "scheduler": "Karras", "scale": 7.0, "seed": 42,
            "width": 512, "height": 768, "model_hash": "6ce0161689", "model": "sd15: v1.5",
            "strength": 0.75, "mask_blur": 4, "inpaint_full_res": True,
            "inpaint_full_res_padding": 32, "inpainting_fill": 0,
            "loras": [{"name": "stars", "weight": 0.8}, {"name": "dots", "weight": 1.0}]}
    assert format_parameters(meta, {"Version": "Ronghe 1"}) == (
        "a cat, sitting <lora:stars:0.8> <lora:dots:1>\nNegative prompt: dog\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, "
        'Size: 512x768, Model hash: 6ce0161689, Model: "sd15: v1.5", Denoising strength: '
        "0.75, Mask blur: 4, Inpaint area: Only masked, Masked area padding: 32, "
        "Masked content: fill, Version: Ronghe 1")
    # No negative prompt: no line for it; hires fields only with enable_hr.
    text = format_parameters({"prompt": "p", "steps": 4, "seed": 1, "width": 64,
                              "height": 64, "hr_scale": 2.0, "enable_hr": True,
                              "hr_upscaler": "Latent", "hr_denoising_strength": 0.5})
    assert text == ("p\nSteps: 4, Seed: 1, Size: 64x64, Denoising strength: 0.5, "
                    "Hires upscale: 2, Hires upscaler: Latent")
    assert "Hires" not in format_parameters({"prompt": "p", "steps": 4, "hr_scale": 2.0})


def test_parsing_follows_a1111() -> None:
    text = ("line one\nline two: still the prompt\nNegative prompt: bad,\nworse\n"
            'Steps: 9, Sampler: Euler a, Seed: 3, Size: 64x32, Lora hashes: "a: 1, b: 2", '
            'Note: "say \\"hi\\""')
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == "line one\nline two: still the prompt"
    assert parsed["Negative prompt"] == "bad,\nworse"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("64", "32")
    assert parsed["Lora hashes"] == "a: 1, b: 2" and parsed["Note"] == 'say "hi"'
    # Fewer than three parameters on the last line: it is part of the prompt.
    assert parse_parameters("just a prompt\nSteps: 3") == {
        "Prompt": "just a prompt\nSteps: 3", "Negative prompt": ""}
    # Values that do not read are left out of the settings, not guessed.
    assert "ddim_steps" not in settings(parse_parameters("p\nSteps: many, Seed: 1, Size: 8x8"))


def test_round_trip_and_lora_tags() -> None:
    meta = {"prompt": "x, y: z", "negative_prompt": "n", "steps": 7, "scale": 4.5,
            "seed": 9, "width": 96, "height": 64, "model": "ronghe-demo", "strength": 0.3,
            "inpainting_mask_invert": True, "mask_blur": 6,
            "loras": [{"name": "7", "weight": 0.5}]}
    got = settings(parse_parameters(format_parameters(meta)))
    assert got == {"prompt": "x, y: z", "neg_prompt": "n", "ddim_steps": 7, "scale": 4.5,
                   "select_seed": 9, "output_size": "96x64", "model_name": "ronghe-demo",
                   "strength": 0.3, "mask_blur": 6, "inpainting_mask_invert": True,
                   "lora_configs": [{"versionid": 7, "merge_weight": 0.5}]}
    assert split_loras("a <lora:x:0.5>, b <LORA:y>") == (
        "a , b", [{"versionid": "x", "merge_weight": 0.5}, {"versionid": "y",
                                                            "merge_weight": 1.0}])


def test_short_hash_is_a1111s_model_hash(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"ronghe")
    # sha256(b"ronghe")[:10]
    import hashlib
    assert short_hash(model) == hashlib.sha256(b"ronghe").hexdigest()[:10]


def test_lora_hashes_are_a1111s_addnet_hash() -> None:
    tensors = {"lora_unet_down.lora_up.weight": torch.arange(6.0).reshape(2, 3)}
    data = save(tensors, metadata={"ss_output_name": "stars"})
    header = int.from_bytes(data[:8], "little")
    # A1111's addnet_hash_safetensors: the SHA-256 of what follows the header, 12 digits.
    assert lora_hash(data) == hashlib.sha256(data[8 + header:]).hexdigest()[:12]
    # Other metadata, the same tensors: the same hash (Civitai finds the file by it).
    assert lora_hash(save(tensors, metadata={"ss_output_name": "renamed"})) == lora_hash(data)
    assert lora_hash(save({**tensors, "x": torch.ones(1)})) != lora_hash(data)
    meta = {"prompt": "p", "steps": 4, "seed": 1, "model": "m",
            "loras": [{"name": "stars", "weight": 0.8, "hash": "0123456789ab"},
                      {"name": "dots", "weight": 1.0, "hash": None}]}
    text = format_parameters(meta)
    assert text.startswith("p <lora:stars:0.8> <lora:dots:1>\n")
    assert text.endswith('Model: m, Lora hashes: "stars: 0123456789ab"')
