"""``ronghe generate --sampler/--scheduler`` against a real server (issue 29)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_user_commands import SMALL, as_json, logged_in, ronghe
from tests.server_support import Server


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


def test_generate_with_a_sampler(server: Server, config: Path, tmp_path: Path) -> None:
    logged_in(server, config)
    made = as_json(ronghe(config, "generate", "a [blue] circle", "--sampler", "Euler a",
                          "--json", "--out", str(tmp_path), *SMALL))
    assert (made["sampler_name"], made["scheduler"]) == ("Euler a", "Automatic")
    r = ronghe(config, "generate", "a circle", "--sampler", "Euler", "--scheduler", "Beta",
               *SMALL)
    assert r.exit_code == 1 and "scheduler must be one of" in r.stderr
