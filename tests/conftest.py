"""Shared fixtures: settings in a temp data dir, an app, a client, a user with a token/key.

Database tests take the ``db_url`` fixture, which runs them on SQLite and on PostgreSQL
(``RONGHE_TEST_POSTGRES_URL``, default the server on 127.0.0.1:5432); each PostgreSQL test
gets a fresh database that is dropped afterwards.  When PostgreSQL is unreachable those
cases are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ronghe.app import create_app
from ronghe.services import Services
from ronghe.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PG_URL = os.environ.get(
    "RONGHE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PASSWORD = "correct horse battery"


def _pg_admin_url() -> str | None:
    try:
        engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return PG_URL
    except Exception as exc:  # any connection failure means: skip PostgreSQL cases
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {type(exc).__name__}: {exc}")
    return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    admin_url = _pg_admin_url()
    assert admin_url
    name = f"ronghe_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {"data_dir": data_dir, "login_delay_seconds": 0.0}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = Services.build(settings)
    from ronghe.db.migrate import upgrade

    upgrade(svc.db.engine)
    yield svc
    svc.close()


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@dataclass
class Account:
    email: str
    password: str
    token: str
    api_key: str
    user_id: int


def make_account(app, email: str = "alice@example.com") -> Account:  # type: ignore[no-untyped-def]
    svc: Services = app.state.services
    user = svc.auth.add_user(email, PASSWORD)
    token = svc.auth.issue_token(email).secret
    key = svc.auth.create_key(email, "test").secret
    return Account(email, PASSWORD, token, key, user.id)


@pytest.fixture
def account(app) -> Account:  # type: ignore[no-untyped-def]
    return make_account(app)


@pytest.fixture
def other_account(app) -> Account:  # type: ignore[no-untyped-def]
    return make_account(app, "bob@example.com")


@pytest.fixture
def api_key(account: Account) -> str:
    return account.api_key


# --- image models (issue 5): the shipped demo weights when present, else a tiny stand-in


@dataclass(frozen=True)
class DemoModel:
    path: Path
    controlnet: Path
    # True for the shipped, trained weights: only then do images show what the prompt says.
    real: bool

    def spec(self, name: str = "ronghe-demo", **extra: object) -> dict[str, object]:
        spec: dict[str, object] = {"name": name, "path": str(self.path), "family": "demo",
                                   "aliases": ["Artist_V0.1.3"],
                                   "controlnets": {"canny": str(self.controlnet)}}
        spec.update(extra)
        return spec

    def require_real(self) -> None:
        if not self.real:
            pytest.skip("content check needs the fully trained demo weights in "
                        "src/ronghe/models/demo (missing or provisional)")


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> DemoModel:
    """The bundled demo model; without it, an untrained model of the same architecture
    (built in a few seconds), so every code path still runs."""
    from ronghe.engines.shipped import default_controlnet_path, default_model_path

    model, controlnet = default_model_path(), default_controlnet_path()
    if (model / "model_index.json").is_file() and (controlnet / "config.json").is_file():
        # Provisional weights (an early, short build) run every path but draw poorly.
        meta = json.loads((model / "ronghe.json").read_text(encoding="utf-8"))
        return DemoModel(model, controlnet, real=not meta.get("provisional"))
    from tools.demo_models.diffusion.build import BuildConfig, build

    root = tmp_path_factory.mktemp("demo-stand-in")
    config = BuildConfig(steps=1, refine_steps=1, controlnet_steps=1, batch_size=2, warmup=1,
                         refine_warmup=1, threads=1)
    build(root / "model", root / "controlnet", config, root / "work", resume=False)
    return DemoModel(root / "model", root / "controlnet", real=False)


# --- network services started by tests on loopback


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto's standalone server) on a loopback port."""
    import subprocess
    import sys
    import time

    import httpx

    pytest.importorskip("moto.server", reason="moto[server] is a test dependency")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def wait_healthy(port: int, proc: object, timeout: float, log: Path | None = None) -> None:
    """Waits until a ``ronghe serve`` subprocess answers /healthz; fails with its log if it
    exits or does not answer in time."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        assert proc.poll() is None, f"server exited:\n{tail}"  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"server did not start in {timeout} s:\n{tail}"
        time.sleep(0.2)
