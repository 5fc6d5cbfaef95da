"""The build machinery: a smoke build, resume, and a loadable diffusers folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from ronghe.cli.demo_model import app
from ronghe.engines.diffusion.demo.build import BuildConfig, _Trainer


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

    # Resuming a finished build re-exports without training again.
    before = (work / "checkpoint.pt").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["build", "--smoke", "--out", str(out), "--work", str(work)])
    assert result.exit_code == 0, result.output
    assert "resumed" in result.output
    assert (work / "checkpoint.pt").stat().st_mtime_ns == before


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
    assert not second.run(stop_after=4)  # crosses into the ControlNet phase
    third = _Trainer(config, tmp_path / "resumed")
    assert third.load() and third.phase == "controlnet"
    assert third.run()

    for a, b in zip(_weights(straight), _weights(third), strict=True):
        torch.testing.assert_close(a, b)
