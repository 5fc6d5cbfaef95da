"""The LoRA trainer: deterministic resume, exports that diffusers loads back, presets."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ronghe.engines.training.captions import base_caption, captions_for
from ronghe.engines.training.export import DIFFUSERS_FILE, KOHYA_FILE, SIDECAR_FILE, export_files
from ronghe.engines.training.lora import LoraTrainer, load_pipeline, lr_factor
from ronghe.engines.training.presets import MAIN_BODIES, TRAINABLE_FAMILIES, preset_for
from tests.conftest import DemoModel
from tests.training_support import concept_images

PRESET = replace(preset_for("demo", "Style"), steps=6, rank=2, warmup_steps=2, batch_size=4)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _trainer(model: Path, seed: int = 3) -> LoraTrainer:
    trainer = LoraTrainer(model, PRESET, seed=seed)
    images = concept_images(5, size=32)
    trainer.prepare(images, captions_for(images, "purple star", "Style"))
    return trainer


def _unet_output(unet: torch.nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, unet.config.in_channels, 32, 32, generator=generator)
    text = torch.randn(1, 8, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        return unet(x, torch.tensor([400]), encoder_hidden_states=text).sample


def test_resumed_run_equals_uninterrupted_run(demo_model: DemoModel, tmp_path: Path) -> None:
    straight = _trainer(demo_model.path)
    for _ in range(PRESET.steps):
        straight.train_step()

    first = _trainer(demo_model.path)
    for _ in range(3):
        first.train_step()
    first.save_checkpoint(tmp_path, {"samples": [{"step": 3, "file_id": "x"}]})
    del first
    second = _trainer(demo_model.path)
    assert second.load_checkpoint(tmp_path) == {"samples": [{"step": 3, "file_id": "x"}]}
    assert second.step == 3 and len(second.losses) == 3
    while second.step < PRESET.steps:
        second.train_step()

    a, b = straight.lora_state_dict(), second.lora_state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    assert straight.losses == pytest.approx(second.losses, rel=1e-4)


def test_checkpoint_of_another_run_is_not_resumed(demo_model: DemoModel,
                                                  tmp_path: Path) -> None:
    trainer = _trainer(demo_model.path, seed=3)
    trainer.train_step()
    trainer.save_checkpoint(tmp_path)
    assert _trainer(demo_model.path, seed=4).load_checkpoint(tmp_path) is None
    assert _trainer(demo_model.path, seed=3).load_checkpoint(tmp_path) == {}


def test_training_changes_only_the_lora_and_learns(demo_model: DemoModel) -> None:
    trainer = _trainer(demo_model.path)
    frozen = {k: v.clone() for k, v in trainer.unet.state_dict().items() if "lora" not in k}
    before = trainer.lora_state_dict()
    for _ in range(3):
        trainer.train_step()
    after = trainer.lora_state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(".attn1." in k or ".attn2." in k for k in after)
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in after} >= {"to_q", "to_k", "to_v"}
    for key, value in trainer.unet.state_dict().items():
        if key in frozen:
            assert torch.equal(value, frozen[key]), key


def test_exports_load_back_through_diffusers(demo_model: DemoModel, tmp_path: Path) -> None:
    trainer = _trainer(demo_model.path)
    for _ in range(2):
        trainer.train_step()
    with torch.no_grad():  # a visible LoRA, so "loaded" and "not loaded" differ clearly
        for name, param in trainer.unet.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)
    expected = _unet_output(trainer.unet)
    sidecar = {"rank": PRESET.rank, "name": "stars", "trigger_word": "purple star",
               "base_model": "ronghe-demo", "steps": 2, "alpha": PRESET.alpha}
    files = export_files(trainer.lora_state_dict(), trainer.unet.peft_config["default"].to_dict(),
                         PRESET.alpha, sidecar)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert json.loads(files[SIDECAR_FILE])["trigger_word"] == "purple star"
    with safe_open(tmp_path / KOHYA_FILE, "pt") as kohya:
        keys = list(kohya.keys())
        assert kohya.metadata()["ss_network_dim"] == str(PRESET.rank)
        alpha = kohya.get_tensor(next(k for k in keys if k.endswith(".alpha")))
    assert all(k.startswith("lora_unet_") for k in keys) and float(alpha) == PRESET.alpha

    pipe = load_pipeline(demo_model.path)
    plain = _unet_output(pipe.unet)
    assert not torch.allclose(plain, expected, atol=1e-3)
    for weight_name in (DIFFUSERS_FILE, KOHYA_FILE):
        pipe.load_lora_weights(str(tmp_path), weight_name=weight_name, adapter_name="t")
        torch.testing.assert_close(_unet_output(pipe.unet), expected, rtol=1e-4, atol=1e-5)
        pipe.delete_adapters(["t"])
    torch.testing.assert_close(_unet_output(pipe.unet), plain)


def test_lr_schedule_warms_up_then_decays() -> None:
    values = [lr_factor(step, 100, 10) for step in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))


def test_presets_and_captions() -> None:
    for family in TRAINABLE_FAMILIES:
        for body in MAIN_BODIES:
            preset = preset_for(family, body)
            assert preset.alpha == preset.rank and preset.steps > 0
            assert preset.checkpoint_every <= preset.steps
    assert preset_for("demo", "Human").flip is False
    with pytest.raises(ValueError, match="sd3"):
        preset_for("sd3", "Style")
    assert base_caption("  purple   star ", "Style") == "purple star style"
    assert base_caption("", "Animals") == "animal"
    assert captions_for([None, None], "ohwx", "Human", lambda _: "smiling") == [  # type: ignore[list-item]
        "ohwx person, smiling", "ohwx person, smiling"]
