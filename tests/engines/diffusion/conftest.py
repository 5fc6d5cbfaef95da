from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ronghe.engines.cpu import budget
from ronghe.engines.diffusion.generate import ImageEngine
from ronghe.engines.diffusion.pipelines import PipelineCache
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.settings import Settings
from tests.conftest import DemoModel


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    # The test machine's cores are shared: one torch thread is several times faster there.
    before = budget.total
    budget.configure(1)
    yield
    budget.configure(before)


def image_settings(data_dir: Path, *specs: dict[str, object], **extra: object) -> Settings:
    return Settings(data_dir=data_dir, image_models=list(specs), cpu_threads=1,
                    **extra)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine(demo_model: DemoModel, tmp_path_factory: pytest.TempPathFactory,
           one_thread: None) -> ImageEngine:
    settings = image_settings(tmp_path_factory.mktemp("data"), demo_model.spec())
    registry = ModelRegistry(settings)
    return ImageEngine(registry, PipelineCache(registry, capacity=2))


@pytest.fixture(scope="module")
def four_channel(demo_model: DemoModel, tmp_path_factory: pytest.TempPathFactory,
                 one_thread: None) -> ImageEngine:
    """The demo model with a 4-channel latent space (as SD 1.5's), untrained: the UNet
    width diffusers' inpainting pipeline takes."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    root = tmp_path_factory.mktemp("four")
    folder = root / "model"
    shutil.copytree(demo_model.path, folder)
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(
        {**UNet2DConditionModel.load_config(folder / "unet"), "in_channels": 4,
         "out_channels": 4})
    vae = AutoencoderKL.from_config(
        {**AutoencoderKL.load_config(folder / "vae"), "latent_channels": 4})
    for name, module in (("unet", unet), ("vae", vae)):
        shutil.rmtree(folder / name)
        module.save_pretrained(folder / name)
    settings = image_settings(root / "data", {"name": "four", "path": str(folder),
                                              "family": "demo"})
    registry = ModelRegistry(settings)
    return ImageEngine(registry, PipelineCache(registry, capacity=1))
