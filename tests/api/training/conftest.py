from __future__ import annotations

from pathlib import Path

import pytest

from ronghe.settings import Settings
from tests.conftest import DemoModel, make_settings


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    # One torch thread: the test machine is shared and small.
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1)
