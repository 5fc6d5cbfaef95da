"""LoRA training on SDXL and FLUX.1: tiny random-weight models (tools/family_models.py) run
the same objectives, exports and precision paths real checkpoints take."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ronghe.engines.diffusion.families import FAMILIES
from ronghe.engines.training.captions import captions_for
from ronghe.engines.training.export import DIFFUSERS_FILE, KOHYA_FILE, export_files
from ronghe.engines.training.lora import LoraTrainer, load_pipeline
from ronghe.engines.training.objectives import FluxObjective, Objective, objective_for
from ronghe.engines.training.precision import TrainPrecision
from ronghe.engines.training.presets import preset_for
from tests.training_support import concept_images
from tools import family_models

FAMILY_IDS = ("flux", "sdxl")
PRESETS = {family: replace(preset_for(family, "Style"), resolution=64, steps=4, rank=4,
                           batch_size=2, warmup_steps=1, learning_rate=1e-2)
           for family in FAMILY_IDS}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family-models")
    return {"flux": family_models.save("flux", root / "flux-dev", "dev"),
            "sdxl": family_models.save("sdxl", root / "sdxl")}


def _trainer(models: dict[str, Path], family: str, seed: int = 3, **kwargs: Any) -> LoraTrainer:
    trainer = LoraTrainer(models[family], PRESETS[family], seed=seed, family=family, **kwargs)
    images = concept_images(4, size=64)
    trainer.prepare(images, captions_for(images, "purple star", "Style"))
    return trainer


def _output(objective: Objective) -> torch.Tensor:
    """The denoiser's prediction on fixed inputs (a model's weights decide it alone)."""
    generator = torch.Generator().manual_seed(0)
    channels = 16 if isinstance(objective, FluxObjective) else 4
    noisy = torch.randn(1, channels, 8, 8, generator=generator)
    timesteps = torch.tensor([400.0 if isinstance(objective, FluxObjective) else 400])
    cond = objective.encode_prompts(["a purple star"])
    extra = objective.image_conditioning((64, 64), (0, 0), (64, 64))
    with torch.no_grad():
        return objective.predict(noisy, timesteps, cond,
                                 extra.unsqueeze(0) if extra is not None else None)


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_training_changes_only_the_lora_on_the_family_targets(models: dict[str, Path],
                                                              family: str) -> None:
    trainer = _trainer(models, family)
    frozen = {k: v.clone() for k, v in trainer.denoiser.state_dict().items() if "lora" not in k}
    before = trainer.lora_state_dict()
    losses = [trainer.train_step() for _ in range(3)]
    assert all(0 < loss < 100 for loss in losses)
    after = trainer.lora_state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    modules = {k.split(".lora_")[0] for k in after}
    assert all(m.endswith(FAMILIES[family].lora_targets) for m in modules)
    if family == "flux":  # both stream's projections and the single blocks' attention
        assert {m.rsplit(".", 1)[-1] for m in modules} >= {"add_q_proj", "to_add_out", "to_q"}
        assert any(m.startswith("single_transformer_blocks.") for m in modules)
    else:
        assert all(".attn1." in m or ".attn2." in m for m in modules)
    for key, value in trainer.denoiser.state_dict().items():
        if key in frozen:
            assert torch.equal(value, frozen[key]), key


def test_flux_resumed_run_equals_uninterrupted_run(models: dict[str, Path],
                                                   tmp_path: Path) -> None:
    straight = _trainer(models, "flux")
    for _ in range(4):
        straight.train_step()
    first = _trainer(models, "flux")
    for _ in range(2):
        first.train_step()
    first.save_checkpoint(tmp_path)
    second = _trainer(models, "flux")
    assert second.load_checkpoint(tmp_path) == {} and second.step == 2
    while second.step < 4:
        second.train_step()
    a, b = straight.lora_state_dict(), second.lora_state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    assert straight.losses == pytest.approx(second.losses, rel=1e-4)


def test_flow_matching_noise_target_and_sampling(models: dict[str, Path]) -> None:
    pipe = load_pipeline(models["flux"], "flux")
    objective = FluxObjective(pipe, PRESETS["flux"])
    clean = torch.randn(512, 16, 2, 2)
    noisy, timesteps, target = objective.noise(clean, torch.Generator().manual_seed(1))
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    sigmas = (timesteps / 1000).view(-1, 1, 1, 1)
    # rectified flow: x_t = (1 - σ) x + σ ε, and the transformer learns ε - x
    torch.testing.assert_close(noisy, (1 - sigmas) * clean + sigmas * noise)
    torch.testing.assert_close(target, noise - clean)
    assert float(sigmas.min()) > 0 and float(sigmas.max()) <= 1
    # uniform σ by default (the script's "none"); logit-normal concentrates it mid-way
    assert 0.4 < float(sigmas.mean()) < 0.6 and float(sigmas.std()) > 0.25
    lognorm = FluxObjective(pipe, replace(PRESETS["flux"], weighting_scheme="logit_normal"))
    _, middle, _ = lognorm.noise(clean, torch.Generator().manual_seed(1))
    assert float((middle / 1000).std()) < float(sigmas.std())
    assert objective.guided and objective.text_ids is None


def test_sdxl_time_ids_follow_the_crop_and_the_flip(models: dict[str, Path]) -> None:
    from PIL import Image

    preset = replace(PRESETS["sdxl"], buckets=False)
    trainer = LoraTrainer(models["sdxl"], preset, seed=1, family="sdxl")
    # 101 x 50 covers 64 x 64 at 129 x 64: the centre crop starts at x 32, and in the
    # mirror image at 129 - 32 - 64 = 33.
    trainer.prepare([Image.new("RGB", (101, 50), "purple")], ["purple star style"])
    bucket = trainer.buckets[0]
    assert bucket.conds is not None and bucket.conds_flipped is not None
    assert bucket.conds[0].tolist() == [50, 101, 0, 32, 64, 64]
    assert bucket.conds_flipped[0].tolist() == [50, 101, 0, 33, 64, 64]
    batch = trainer.batch(0)
    assert batch.image_cond is not None and batch.image_cond.shape == (2, 6)
    assert set(batch.cond) == {"embeds", "pooled"}
    # SDXL's unconditional embedding at generation is zeros (force_zeros_for_empty_prompt).
    assert trainer.empty is not None and not trainer.empty["embeds"].any()


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_exports_load_back_through_diffusers(models: dict[str, Path], family: str,
                                             tmp_path: Path) -> None:
    trainer = _trainer(models, family)
    trainer.train_step()
    with torch.no_grad():  # a visible LoRA, so "loaded" and "not loaded" differ clearly
        for name, param in trainer.denoiser.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)
    trainer.denoiser.eval()
    expected = _output(trainer.objective)
    preset = PRESETS[family]
    sidecar = {"rank": preset.rank, "name": "stars", "trigger_word": "purple star"}
    files = export_files(trainer.lora_state_dict(), trainer.lora_config(), preset.alpha,
                         sidecar, family=family)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with safe_open(tmp_path / KOHYA_FILE, "pt") as kohya:
        meta = kohya.metadata()
    assert meta["ss_base_model_version"] == {"flux": "flux1", "sdxl": "sdxl_base_v1-0"}[family]
    prefix = "transformer." if family == "flux" else "unet."
    assert all(k.startswith(prefix) for k in load_file(tmp_path / DIFFUSERS_FILE))

    pipe = load_pipeline(models[family], family)
    fresh = objective_for(FAMILIES[family])(pipe, preset)
    plain = _output(fresh)
    assert not torch.allclose(plain, expected, atol=1e-3)
    # The kohya FLUX layout cannot load on a tiny model: diffusers' reader assumes the real
    # model's widths (3072) for a single block's linear1 (the next test checks its maths).
    for weight_name in (DIFFUSERS_FILE,) + ((KOHYA_FILE,) if family == "sdxl" else ()):
        pipe.load_lora_weights(str(tmp_path), weight_name=weight_name, adapter_name="t")
        torch.testing.assert_close(_output(fresh), expected, rtol=1e-4, atol=1e-5)
        pipe.delete_adapters(["t"])
    torch.testing.assert_close(_output(fresh), plain)


def test_flux_kohya_layout_carries_the_same_updates(models: dict[str, Path]) -> None:
    from diffusers import FluxPipeline

    trainer = _trainer(models, "flux")
    trainer.train_step()
    state = {k: v + 0.01 for k, v in trainer.lora_state_dict().items()}
    alpha, rank = PRESETS["flux"].alpha, PRESETS["flux"].rank
    files = export_files(state, trainer.lora_config(), alpha, {"rank": rank}, family="flux")
    kohya = load_file_bytes(files[KOHYA_FILE])

    def delta(module: str) -> torch.Tensor:
        return state[f"{module}.lora_B.weight"] @ state[f"{module}.lora_A.weight"] * (alpha / rank)

    def kohya_delta(key: str) -> torch.Tensor:
        down, up = kohya[f"{key}.lora_down.weight"], kohya[f"{key}.lora_up.weight"]
        return up @ down * (float(kohya[f"{key}.alpha"]) / down.shape[0])

    qkv = torch.cat([delta(f"transformer_blocks.0.attn.to_{p}") for p in "qkv"])
    torch.testing.assert_close(kohya_delta("lora_unet_double_blocks_0_img_attn_qkv"), qkv)
    txt = torch.cat([delta(f"transformer_blocks.0.attn.add_{p}_proj") for p in "qkv"])
    torch.testing.assert_close(kohya_delta("lora_unet_double_blocks_0_txt_attn_qkv"), txt)
    torch.testing.assert_close(kohya_delta("lora_unet_double_blocks_0_img_attn_proj"),
                               delta("transformer_blocks.0.attn.to_out.0"))
    single = torch.cat([delta(f"single_transformer_blocks.0.attn.to_{p}") for p in "qkv"])
    linear1 = kohya_delta("lora_unet_single_blocks_0_linear1")
    width = single.shape[0] // 3
    # linear1 is q, k, v and the MLP's input (4 times as wide), which has no LoRA here.
    assert linear1.shape == (3 * width + 4 * width, single.shape[1])
    torch.testing.assert_close(linear1[:3 * width], single)
    assert not linear1[3 * width:].any()
    # diffusers' kohya reader takes the double blocks apart again into the trained LoRAs.
    double = {k: v for k, v in kohya.items() if "double_blocks" in k}
    back = FluxPipeline.lora_state_dict(double)
    for module in ("attn.to_q", "attn.to_k", "attn.add_v_proj", "attn.to_add_out"):
        for part in ("lora_A", "lora_B"):
            torch.testing.assert_close(back[f"transformer.transformer_blocks.0.{module}."
                                            f"{part}.weight"],
                                       state[f"transformer_blocks.0.{module}.{part}.weight"])


def load_file_bytes(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(data)


def test_mixed_precision_and_checkpointing_train(models: dict[str, Path]) -> None:
    """The accelerator path (half-precision base, float32 LoRA under autocast, gradient
    checkpointing), run on the CPU in bfloat16, the half type it has kernels for."""
    precision = TrainPrecision("bfloat16", "float32", "bfloat16", False, True, "adamw")
    trainer = _trainer(models, "flux", precision=precision)
    assert trainer.denoiser.is_gradient_checkpointing
    assert trainer.pipe.vae.dtype == torch.bfloat16  # back after encoding in float32
    losses = [trainer.train_step() for _ in range(2)]
    assert all(0 < loss < 100 for loss in losses)
    assert all(p.dtype == torch.float32 for p in trainer.params)
    frozen = [p for n, p in trainer.denoiser.named_parameters() if "lora" not in n]
    assert all(p.dtype == torch.bfloat16 for p in frozen)
    assert all(v.dtype == torch.float32 for v in trainer.lora_state_dict().values())
    assert trainer.sample("purple star", seed=1, steps=2).size == (64, 64)
    config = json.loads(json.dumps(trainer.lora_config(), default=str))
    assert config["r"] == PRESETS["flux"].rank


def test_families_without_a_training_objective_are_named() -> None:
    with pytest.raises(ValueError, match="does not support SD 3"):
        objective_for(FAMILIES["sd3"])
    assert all(objective_for(f) for f in FAMILIES.values() if f.trainable)
