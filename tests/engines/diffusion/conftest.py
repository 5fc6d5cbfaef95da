from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
