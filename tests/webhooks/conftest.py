from __future__ import annotations

from pathlib import Path

import pytest

from ronghe.settings import Settings
from tests.conftest import make_settings

LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Receivers in these tests listen on 127.0.0.1, which only this setting opens.
    return make_settings(tmp_path / "data", webhook_allowed_networks=LOOPBACK,
                         webhook_retry_base_seconds=0.2, chat_models=[])
