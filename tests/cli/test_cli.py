"""The ``ronghe`` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ronghe.cli import app
from tests.conftest import free_port, wait_healthy

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env, input=input)


def test_help_for_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0 and "serve" in result.output
    for group, commands in {"user": ["add", "list", "passwd"], "key": ["create", "list",
                                                                          "revoke"]}.items():
        assert run(group, "--help").exit_code == 0
        for cmd in commands:
            r = run(group, cmd, "--help")
            assert r.exit_code == 0 and "--data-dir" in r.output
    r = run("serve", "--help")
    assert r.exit_code == 0 and "--port" in r.output and "--data-dir" in r.output


def test_users_and_keys(tmp_path: Path) -> None:
    d = str(tmp_path)
    r = run("user", "add", "--email", "ann@example.com", "--data-dir", d,
            env={"RONGHE_USER_PASSWORD": "pass-word-1"})
    assert r.exit_code == 0, r.output
    r = run("user", "add", "--email", "bob@example.com", "--data-dir", d,
            input="pass-word-2\npass-word-2\n")
    assert r.exit_code == 0, r.output
    r = run("user", "add", "--email", "ann@example.com", "--password", "pass-word-3",
            "--data-dir", d)
    assert r.exit_code == 1 and "already exists" in r.output
    listing = run("user", "list", "--data-dir", d).stdout
    assert "ann@example.com" in listing and "bob@example.com" in listing

    r = run("key", "create", "--data-dir", d)
    assert r.exit_code == 1 and "--email is required" in r.output
    r = run("key", "create", "--email", "ann@example.com", "--name", "ci", "--data-dir", d)
    assert r.exit_code == 0
    key = r.stdout.strip()
    assert key.startswith("rhk_") and "\n" not in key
    assert "shown only this once" in r.stderr

    from ronghe.auth.service import AuthService
    from ronghe.db import Database
    from ronghe.settings import Settings

    db = Database(f"sqlite:///{tmp_path / 'ronghe.db'}")
    auth = AuthService(db, Settings(data_dir=tmp_path))
    assert auth.user_for_secret(key).email == "ann@example.com"
    keys = run("key", "list", "--data-dir", d).stdout
    assert key[:12] in keys and key not in keys
    assert run("key", "revoke", "1", "--data-dir", d).exit_code == 0
    with pytest.raises(Exception, match="revoked"):
        auth.user_for_secret(key)

    r = run("user", "passwd", "--email", "ann@example.com", "--password", "new-pass-word",
            "--data-dir", d)
    assert r.exit_code == 0
    assert auth.login("ann@example.com", "new-pass-word").secret.startswith("rht_")

    from ronghe.errors import Unauthorized
    from ronghe.jobs.store import TaskStore

    tasks = TaskStore(db, lease_seconds=60, max_attempts=2)
    ann = auth.user_for_secret(auth.login("ann@example.com", "new-pass-word").secret)
    queued = tasks.create(ann.id, "image", "images.demo", {})
    r = run("user", "disable", "--email", "ann@example.com", "--data-dir", d)
    assert r.exit_code == 0 and "1 unfinished task(s) cancelled" in r.stderr, r.output
    assert tasks.get(queued.id).state == "cancelled"
    with pytest.raises(Unauthorized):
        auth.login("ann@example.com", "new-pass-word")
    db.dispose()


def test_env_data_dir_and_bad_settings(tmp_path: Path) -> None:
    env = {"RONGHE_DATA_DIR": str(tmp_path / "envdir")}
    assert run("user", "list", env=env).exit_code == 0
    assert (tmp_path / "envdir" / "ronghe.db").exists()
    r = run("user", "list", env={**env, "RONGHE_PORT": "nope"})
    assert r.exit_code == 1 and "invalid setting port" in r.output



def test_serve_starts_fast_and_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RONGHE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, proc, 60)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        assert (tmp_path / "secret.key").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_public_host_without_secret_is_refused(tmp_path: Path) -> None:
    r = run("serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert r.exit_code == 1 and "RONGHE_SECRET_KEY" in r.output


def test_admins_from_the_command_line(tmp_path: Path) -> None:
    d = str(tmp_path)
    env = {"RONGHE_USER_PASSWORD": "pass-word-1"}
    r = run("user", "add", "--email", "root@example.com", "--admin", "--data-dir", d, env=env)
    assert r.exit_code == 0 and "created admin root@example.com" in r.output
    assert run("user", "add", "-e", "ann@example.com", "--data-dir", d, env=env).exit_code == 0
    rows = [line.split() for line in run("user", "list", "--data-dir", d).stdout.splitlines()]
    assert [(row[1], row[3]) for row in rows] == [("root@example.com", "admin"),
                                                  ("ann@example.com", "user")]
    assert run("user", "admin", "-e", "ann@example.com", "--data-dir", d).exit_code == 0
    assert run("user", "admin", "-e", "root@example.com", "--remove",
               "--data-dir", d).exit_code == 0
    rows = [line.split() for line in run("user", "list", "--data-dir", d).stdout.splitlines()]
    assert [row[3] for row in rows] == ["user", "admin"]
    r = run("user", "admin", "-e", "nobody@example.com", "--data-dir", d)
    assert r.exit_code == 1 and "no user with email" in r.output
