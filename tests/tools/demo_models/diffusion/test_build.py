"""The build machinery: a smoke build, resume, and a loadable diffusers folder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from typer.testing import CliRunner

from tools.demo_models.cli import app
from tools.demo_models.diffusion.build import BuildConfig, _Trainer, build


def test_smoke_build_writes_loadable_folders(tmp_path: Path) -> None:
    from diffusers import (
        ControlNetModel,
        StableDiffusionControlNetPipeline,
        StableDiffusionPipeline,
    )

    out, work = tmp_path / "model", tmp_path / "work"
    result = CliRunner().invoke(
        app, ["build", "--smoke", "--out", str(out), "--work", str(work), "--no-resume"]
    )
    assert result.exit_code == 0, result.output
    controlnet_dir = tmp_path / "model-controlnet-canny"
    meta = json.loads((out / "ronghe.json").read_text())
    assert meta["family"] == "demo" and meta["native_resolution"] == 32
    assert not list(out.rglob("*.bin")), "weights must be safetensors only"

    pipe = StableDiffusionPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on a blue background", num_inference_steps=2).images[0]
    assert image.size == (32, 32)
    net = ControlNetModel.from_pretrained(controlnet_dir)
    cn_pipe = StableDiffusionControlNetPipeline(**pipe.components, controlnet=net)
    cn_pipe.set_progress_bar_config(disable=True)
    edges = torch.zeros(1, 3, 32, 32)
    assert cn_pipe("a red circle", image=edges, num_inference_steps=2).images[0].size == (32, 32)

    # Resuming a finished build re-exports without training again, and keeps the
    # ControlNets built on the model since (build-controlnet).
    meta["controlnet"]["tile"] = "model-controlnet-tile"
    (out / "ronghe.json").write_text(json.dumps(meta))
    before = (work / "checkpoint.pt").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["build", "--smoke", "--out", str(out), "--work", str(work)])
    assert result.exit_code == 0, result.output
    assert "resumed" in result.output
    assert (work / "checkpoint.pt").stat().st_mtime_ns == before
    assert json.loads((out / "ronghe.json").read_text())["controlnet"] == {
        "canny": "model-controlnet-canny", "tile": "model-controlnet-tile"}


def _weights(trainer: _Trainer) -> list[torch.Tensor]:
    assert trainer.controlnet is not None
    return [
        *trainer.ema_unet.state_dict().values(),
        *trainer.ema_text.state_dict().values(),
        *trainer.controlnet.state_dict().values(),
    ]


def test_interrupted_build_resumes_to_the_same_weights(tmp_path: Path) -> None:
    config = BuildConfig.smoke(seed=3)
    straight = _Trainer(config, tmp_path / "straight")
    (tmp_path / "straight").mkdir()
    assert straight.run()

    (tmp_path / "resumed").mkdir()
    first = _Trainer(config, tmp_path / "resumed")
    assert not first.run(stop_after=4)  # stops inside the UNet phase
    second = _Trainer(config, tmp_path / "resumed")
    assert second.load() and second.phase == "unet" and second.step == 4
    assert not second.run(stop_after=4)  # crosses into phase 1b
    third = _Trainer(config, tmp_path / "resumed")
    assert third.load() and (third.phase, third.step) == ("refine", 2)
    assert not third.run(stop_after=4)  # crosses into the ControlNet phase
    fourth = _Trainer(config, tmp_path / "resumed")
    assert fourth.load() and (fourth.phase, fourth.step) == ("controlnet", 2)
    assert fourth.run()

    for a, b in zip(_weights(straight), _weights(fourth), strict=True):
        torch.testing.assert_close(a, b)


def test_phase_1b_starts_from_a_saved_model(tmp_path: Path) -> None:
    """``--init-from`` takes phase 1 from a diffusers folder (its weights, its step count)
    and ends with the weights of a build that trained phase 1 itself."""
    phase_1 = replace(BuildConfig.smoke(seed=0), refine_steps=0)  # as the 5000-step model
    assert build(tmp_path / "a", tmp_path / "a-cn", phase_1, tmp_path / "wa", resume=False)
    config = BuildConfig.smoke(seed=0)
    trainer = _Trainer(config, tmp_path / "unused")
    trainer.start_from(tmp_path / "a")
    assert (trainer.phase, trainer.step, trainer.unet_steps_done) == ("refine", 0, 6)
    saved = UNet2DConditionModel.from_pretrained(tmp_path / "a" / "unet").state_dict()
    for name, value in trainer.unet.state_dict().items():
        torch.testing.assert_close(value, saved[name])

    result = CliRunner().invoke(app, ["build", "--smoke", "--init-from", str(tmp_path / "a"),
                                      "--out", str(tmp_path / "b"), "--work",
                                      str(tmp_path / "wb"), "--no-resume"])
    assert result.exit_code == 0, result.output
    assert "phase 1 taken from" in result.output
    straight = _Trainer(config, tmp_path / "straight")
    (tmp_path / "straight").mkdir()
    assert straight.run()
    built = UNet2DConditionModel.from_pretrained(tmp_path / "b" / "unet").state_dict()
    for name, value in straight.ema_unet.state_dict().items():
        torch.testing.assert_close(value, built[name])
    meta = json.loads((tmp_path / "b" / "ronghe.json").read_text())["build"]
    assert (meta["steps"], meta["refine_steps"], meta["controlnet_steps"]) == (6, 4, 4)
    assert meta["init_from"] == str(tmp_path / "a")

    again = CliRunner().invoke(app, ["build", "--smoke", "--init-from", str(tmp_path / "b"),
                                     "--out", str(tmp_path / "c"), "--work",
                                     str(tmp_path / "wc"), "--no-resume"])
    said = " ".join(again.output.replace("│", " ").split())  # unwrap typer's error box
    assert again.exit_code == 2 and "has had phase 1b already" in said, again.output
