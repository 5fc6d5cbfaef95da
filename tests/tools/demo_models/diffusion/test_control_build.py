"""Building the demo model's brightness / tile ControlNets: the command, resume, the maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from ronghe.engines.shipped import default_model_path
from tools.demo_models.cli import app
from tools.demo_models.diffusion import shapes
from tools.demo_models.diffusion.control_build import ControlBuildConfig, _Trainer, control_map
from tools.demo_models.diffusion.control_eval import lowres_error, luma_correlation


def test_smoke_build_writes_a_loadable_controlnet(tmp_path: Path) -> None:
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    from tools.demo_models.diffusion.evaluate import load_pipeline

    out = tmp_path / "tile"
    result = CliRunner().invoke(app, ["build-controlnet", "--kind", "tile", "--smoke", "--out",
                                      str(out), "--work", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "ronghe.json").read_text())
    assert (meta["control"], meta["base"], meta["controlnet_steps"]) == ("tile", "demo", 3)
    assert not list(out.rglob("*.bin"))
    pipe = load_pipeline(default_model_path())
    cn_pipe = StableDiffusionControlNetPipeline(
        **pipe.components, controlnet=ControlNetModel.from_pretrained(out))
    cn_pipe.set_progress_bar_config(disable=True)
    image = cn_pipe("", image=torch.zeros(1, 3, 32, 32), num_inference_steps=2).images[0]
    assert image.size == (32, 32)
    bad = CliRunner().invoke(app, ["build-controlnet", "--kind", "depth", "--smoke"])
    assert bad.exit_code != 0 and "brightness, tile" in bad.output


def test_interrupted_build_resumes_to_the_same_weights(tmp_path: Path) -> None:
    config = ControlBuildConfig.smoke("brightness", seed=2)
    model = default_model_path()
    straight = _Trainer(config, model, tmp_path)
    (tmp_path / "a").mkdir()
    straight.work = tmp_path / "a"
    assert straight.run()
    (tmp_path / "b").mkdir()
    first = _Trainer(config, model, tmp_path / "b")
    assert not first.run(stop_after=2)
    second = _Trainer(config, model, tmp_path / "b")
    assert second.load() and second.step == 2
    assert second.run()
    for a, b in zip(straight.controlnet.state_dict().values(),
                    second.controlnet.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_training_maps_are_the_served_maps_and_the_eval_scores_them() -> None:
    image, _ = shapes.draw("yellow", "circle", "blue", np.random.default_rng(1))
    grey = control_map("brightness", image)
    assert luma_correlation(image, grey) > 0.99
    assert luma_correlation(image.transpose(0), grey) < 0.9  # a mirrored image scores lower
    low = control_map("tile", image, rate=4)
    assert lowres_error(low, image, 4) < 10 < lowres_error(image.transpose(0), image, 4)
