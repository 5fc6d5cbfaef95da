"""Shared helpers for subcommands that touch the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ronghe.cli import load_settings
from ronghe.db.migrate import upgrade
from ronghe.services import Services


@contextmanager
def services(data_dir: Path | None, config: Path | None) -> Iterator[Services]:
    svc = Services.build(load_settings(data_dir, config))
    upgrade(svc.db.engine)
    try:
        yield svc
    finally:
        svc.close()
