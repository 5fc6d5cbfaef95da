"""A real ``ronghe serve`` subprocess for tests that talk HTTP to it (client, user CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from tests.conftest import PASSWORD, DemoModel, free_port, make_settings, wait_healthy


@dataclass
class Server:
    url: str
    port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def add_users(data_dir: Path, emails: Sequence[str]) -> None:
    services = Services.build(make_settings(data_dir))
    upgrade(services.db.engine)
    for email in emails:
        services.auth.add_user(email, PASSWORD)
    services.close()


@contextmanager
def ronghe_server(data_dir: Path, model: DemoModel | None = None,
                  emails: Sequence[str] = ("alice@example.com",),
                  **env: str) -> Iterator[Server]:
    """Users ``emails`` (password ``PASSWORD``), one torch thread, the demo model."""
    add_users(data_dir, emails)
    port = free_port()
    full_env = {**os.environ, "RONGHE_DATA_DIR": str(data_dir), "RONGHE_CPU_THREADS": "1",
                "RONGHE_LOGIN_DELAY_SECONDS": "0", "HF_HUB_OFFLINE": "1", **env}
    if model is not None:
        full_env["RONGHE_IMAGE_MODELS"] = json.dumps([model.spec()])
    log_path = data_dir / f"server-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "serve", "--port",
                                 str(port)], env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, proc, 90, log_path)
            yield Server(f"http://127.0.0.1:{port}", port, data_dir, log_path, proc)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


EMAILS = ("alice@example.com", "bob@example.com")


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[Server]:
    """One real server per test package that imports this fixture into its conftest (users
    alice and bob, password ``PASSWORD``)."""
    with ronghe_server(tmp_path_factory.mktemp("server"), demo_model, EMAILS) as running:
        yield running


def make_images(directory: Path, count: int = 3) -> list[Path]:
    """Concept pictures as PNG files, small (32 px) so training stays short."""
    from tests.training_support import concept_images

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(concept_images(count, size=32)):
        paths.append(directory / f"{i}.png")
        image.save(paths[-1])
    return paths
