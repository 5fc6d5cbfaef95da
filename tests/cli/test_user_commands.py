"""The user commands (login, chat, generate, tasks, result, cancel, train, logout) against a
real ``ronghe serve`` subprocess, with credentials in a temporary XDG_CONFIG_HOME."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ronghe.cli import app
from ronghe.client import AuthError, Client
from ronghe.engines.diffusion.output import read_metadata
from tests.conftest import PASSWORD
from tests.server_support import Server, make_images

PROMPT = "a red circle on a blue background"
SMALL = ["--size", "64x64", "--steps", "2"]
CLEAN = {"RONGHE_URL": None, "RONGHE_TOKEN": None, "RONGHE_API_KEY": None,
         "RONGHE_PASSWORD": None}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


def ronghe(config: Path, *args: str, input: str | None = None, **env: str | None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=input,
                              env={**CLEAN, "XDG_CONFIG_HOME": str(config), **env})


def logged_in(server: Server, config: Path, email: str = "alice@example.com") -> None:
    r = ronghe(config, "login", "--url", server.url, "--email", email, "--password", PASSWORD)
    assert r.exit_code == 0, r.output


def as_json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_shows_user_and_admin_commands() -> None:
    r = CliRunner().invoke(app, ["--help"])
    for name in ("login", "logout", "chat", "generate", "tasks", "result", "cancel", "train",
                 "serve", "user", "key", "models", "lora"):
        assert f" {name} " in r.output, name
    for name in ("login", "chat", "generate", "tasks", "result", "cancel", "train", "logout"):
        assert "--json" in CliRunner().invoke(app, [name, "--help"]).output, name


def test_login_stores_credentials_0600_and_logout_revokes(server: Server, config: Path) -> None:
    r = ronghe(config, "login", "--url", server.url, "--email", "bob@example.com",
               "--password", "wrong password")
    assert r.exit_code == 1 and "email or password is incorrect" in r.stderr
    assert not (config / "ronghe" / "credentials").exists()
    assert ronghe(config, "tasks").exit_code == 1  # not logged in

    r = ronghe(config, "login", "--url", server.url, "--email", "bob@example.com", "--json",
               input=f"{PASSWORD}\n")  # the password is prompted for
    info = as_json(r)
    path = config / "ronghe" / "credentials"
    assert info["credentials"] == str(path) and info["email"] == "bob@example.com"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["url"] == server.url and stored["token"].startswith("rht_")
    assert as_json(ronghe(config, "tasks", "--json"))["items"] == []

    assert as_json(ronghe(config, "logout", "--json")) == {"revoked": True, "removed": True,
                                                           "error": None}
    assert not path.exists()
    with Client(server.url, token=stored["token"]) as stale, pytest.raises(AuthError):
        stale.tasks()
    r = ronghe(config, "tasks")
    assert r.exit_code == 1 and "not logged in" in r.stderr


def test_environment_overrides_the_stored_login(server: Server, config: Path) -> None:
    with Client(server.url) as c:
        token = c.login("alice@example.com", PASSWORD).token
    r = ronghe(config, "tasks", "--json", RONGHE_URL=server.url, RONGHE_TOKEN=token)
    assert r.exit_code == 0, r.output
    r = ronghe(config, "tasks", RONGHE_URL=server.url, RONGHE_TOKEN="rht_forged")
    assert r.exit_code == 1 and "token" in r.stderr.lower()
    key = subprocess.run([sys.executable, "-m", "ronghe.cli", "key", "create", "--email",
                          "alice@example.com", "--data-dir", str(server.data_dir)],
                         capture_output=True, text=True, check=True).stdout.strip()
    r = ronghe(config, "chat", "Hi", "--max-tokens", "4", RONGHE_URL=server.url,
               RONGHE_API_KEY=key)
    assert r.exit_code == 0 and r.stdout.strip(), r.output


def test_chat_one_question_and_a_session(server: Server, config: Path) -> None:
    logged_in(server, config)
    r = ronghe(config, "chat", "Say this is a test!", "--max-tokens", "8")
    assert r.exit_code == 0 and r.stdout.strip(), r.output
    reply = as_json(ronghe(config, "chat", "Hi", "--max-tokens", "4", "--json"))
    assert reply["reply"] and reply["usage"]["completion_tokens"] <= 4
    # A session keeps its history: the second question's prompt holds the first exchange.
    r = ronghe(config, "chat", "--json", "--max-tokens", "6", input="Hello\n\nName a fruit\n")
    assert r.exit_code == 0, r.output
    turns, text, decoder = [], r.stdout.strip(), json.JSONDecoder()
    while text:
        turn, end = decoder.raw_decode(text)
        turns.append(turn)
        text = text[end:].strip()
    assert len(turns) == 2
    first, second = (t["usage"] for t in turns)
    assert second["prompt_tokens"] > first["prompt_tokens"] + first["completion_tokens"]
    r = ronghe(config, "chat", "x", "--temperature", "5")
    assert r.exit_code == 1 and "temperature: must be in (0, 2]" in r.stderr


def test_generate_tasks_result_cancel(server: Server, config: Path, tmp_path: Path) -> None:
    logged_in(server, config)
    out = tmp_path / "out"
    r = ronghe(config, "generate", PROMPT, "-n", "2", "--seed", "11", "--out", str(out), *SMALL)
    assert r.exit_code == 0, r.output
    paths = [Path(p) for p in r.stdout.split()]
    task_id = paths[0].name.rsplit("_", 1)[0]
    assert [p.name for p in paths] == [f"{task_id}_0.jpg", f"{task_id}_1.jpg"]
    meta = read_metadata(paths[1].read_bytes())  # the parameters stay in the file
    assert meta["prompt"] == PROMPT and meta["seed"] == 12 and meta["task_id"] == task_id

    made = as_json(ronghe(config, "generate", "a green square", "--json", "--out",
                          str(out), "--init", str(paths[0]), "--strength", "0.5", *SMALL))
    assert Path(made["images"][0]["path"]).is_file() and made["images"][0]["width"] == 64
    assert as_json(ronghe(config, "result", made["task_id"], "--json"))["task_type"] == "img2img"

    r = ronghe(config, "generate", PROMPT, "--lora", "no-such-lora:0.5", *SMALL)
    assert r.exit_code == 1 and "lora_configs[0].versionid" in r.stderr

    table = ronghe(config, "tasks")
    assert table.exit_code == 0 and task_id in table.stdout and made["task_id"] in table.stdout
    listed = as_json(ronghe(config, "tasks", "--state", "done", "--json"))
    assert {task_id, made["task_id"]} <= {t["task_id"] for t in listed["items"]}

    r = ronghe(config, "result", task_id)
    assert r.exit_code == 0 and "done" in r.stdout and server.url in r.stdout
    again = tmp_path / "again"
    r = ronghe(config, "result", task_id, "--out", str(again))
    assert sorted(p.name for p in again.iterdir()) == [p.name for p in paths]
    r = ronghe(config, "result", "no-such-task")
    assert r.exit_code == 1 and "task 'no-such-task' not found" in r.stderr

    with Client(server.url, email="alice@example.com", password=PASSWORD) as c:
        slow = c.submit(PROMPT, n_images=8, output_size="64x64", ddim_steps=150)
    cancelled = as_json(ronghe(config, "cancel", slow, "--json"))
    assert cancelled["task_id"] == slow and cancelled["state"] in ("cancelled", "running")
    r = ronghe(config, "cancel", "no-such-task")
    assert r.exit_code == 1 and "not found" in r.stderr


def test_train_then_generate_with_the_model(server: Server, config: Path,
                                            tmp_path: Path) -> None:
    logged_in(server, config)
    images = make_images(tmp_path / "images")
    r = ronghe(config, "train", str(images[0].parent), "--name", "cli-stars", "--trigger",
               "purple star", "--steps", "3", "--seed", "2")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "cli-stars" and "--model cli-stars" in r.stderr
    train_task = as_json(ronghe(config, "tasks", "--kind", "train", "--json"))["items"][0]
    assert train_task["model_name"] == "cli-stars" and train_task["state"] == "done"
    shown = ronghe(config, "result", train_task["task_id"])
    assert "training" in shown.stdout and "step 3/3" in shown.stdout
    offered = as_json(ronghe(config, "catalog", "--json"))
    assert "cli-stars" in [m["model_name"] for m in offered["private"]]
    assert [m["model_name"] for m in offered["base"]] == ["ronghe-demo"]
    assert "cli-stars" in ronghe(config, "catalog", "--kind", "private").stdout
    r = ronghe(config, "generate", "purple star", "--model", "cli-stars", "--json",
               "--out", str(tmp_path), *SMALL)
    path = Path(as_json(r)["images"][0]["path"])
    assert read_metadata(path.read_bytes())["loras"][0]["name"] == "cli-stars"
    r = ronghe(config, "train", str(tmp_path / "nothing-here"), "--name", "x", "--trigger", "t")
    assert r.exit_code == 1 and "no such file or directory" in r.stderr


def _running(server: Server, token: str, proc: subprocess.Popen[str], kind: str,
             match: str) -> str:
    """The id of the task the process started, once it runs on the server."""
    with Client(server.url, token=token) as c:
        deadline = time.monotonic() + 120
        while True:
            for t in c.tasks(kind=kind, state="running").items:
                if match in (t.model_name, t.prompt):
                    return t.task_id
            assert proc.poll() is None and time.monotonic() < deadline, "the task never ran"
            time.sleep(0.2)


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """Child processes start with Ctrl-C at its default, as in a terminal. A shell ignores
    SIGINT for what it starts in the background, and an ignored signal stays ignored across
    exec: pytest run that way would hand the CLI a Ctrl-C it cannot see. A caught one is
    reset to the default on exec, so catching it here for the test's length is enough."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_in_generate_cancels_the_task(server: Server, tmp_path: Path) -> None:
    with Client(server.url, email="bob@example.com", password=PASSWORD) as c:
        token = c.login("bob@example.com", PASSWORD).token
    env = {**os.environ, "RONGHE_URL": server.url, "RONGHE_TOKEN": token,
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "generate", "interrupted",
                             "-n", "8", "--size", "64x64", "--steps", "150"], env=env,
                            cwd=tmp_path,  # where its images would land, were it not cancelled
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    task_id = _running(server, token, proc, "image", "interrupted")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and f"cancelled task {task_id}" in stderr
    with Client(server.url, token=token) as c:
        assert c.wait(task_id, timeout=60).state == "cancelled"


def _interrupt_training(server: Server, token: str, tmp_path: Path, name: str,
                        answer: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Runs ``ronghe train`` as a real process, sends SIGINT once its training runs on the
    server, answers the question with ``answer``; returns the process and the task id."""
    images = make_images(tmp_path / name)
    env = {**os.environ, "RONGHE_URL": server.url, "RONGHE_TOKEN": token,
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "train", str(images[0].parent),
                             "--name", name, "--trigger", "t", "--steps", "5000"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    task_id = _running(server, token, proc, "train", name)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(input=answer, timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), task_id


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_in_train_asks_whether_to_cancel(server: Server, tmp_path: Path) -> None:
    with Client(server.url, email="bob@example.com", password=PASSWORD) as c:
        token = c.login("bob@example.com", PASSWORD).token
    done, task_id = _interrupt_training(server, token, tmp_path, "ctrl-c-yes", "y\n")
    assert done.returncode == 130, done.stderr
    assert "Cancel training" in done.stderr and "cancelled" in done.stderr
    with Client(server.url, token=token) as c:
        assert c.train_progress(task_id).state == "cancelled"

    kept, task_id = _interrupt_training(server, token, tmp_path, "ctrl-c-no", "n\n")
    assert kept.returncode == 130 and "the training goes on" in kept.stderr
    with Client(server.url, token=token) as c:
        assert c.train_progress(task_id).state == "running"
    r = CliRunner().invoke(app, ["cancel", task_id], env={**CLEAN, "RONGHE_URL": server.url,
                                                          "RONGHE_TOKEN": token})
    assert r.exit_code == 0, r.output
    with Client(server.url, token=token) as c:
        assert c.wait_training(task_id, timeout=120).state == "cancelled"


def test_generate_with_a_mask_and_png_info(server: Server, config: Path, tmp_path: Path) -> None:
    from PIL import Image

    logged_in(server, config)
    source = make_images(tmp_path)[0]
    mask = tmp_path / "mask.png"
    with Image.open(source) as image:
        Image.new("L", image.size, 255).save(mask)
    out = tmp_path / "out"
    made = as_json(ronghe(config, "generate", PROMPT, "--init", str(source), "--mask",
                          str(mask), "--mask-blur", "0", "--fill", "fill", "--format", "png",
                          "--seed", "5", "--json", "--out", str(out), *SMALL))
    path = Path(made["images"][0]["path"])
    assert path.suffix == ".png"
    assert as_json(ronghe(config, "result", made["task_id"], "--json"))["task_type"] == "inpaint"
    info = as_json(ronghe(config, "png-info", str(path), "--json"))
    assert info["settings"]["select_seed"] == 5 and info["settings"]["inpainting_fill"] == 0
    assert "Masked content: fill" in info["text"]
    table = ronghe(config, "png-info", str(path))
    assert table.exit_code == 0 and "select_seed" in table.stdout
    r = ronghe(config, "generate", PROMPT, "--mask", str(tmp_path / "none.png"), *SMALL)
    assert r.exit_code == 1 and "--mask: no such file" in r.stderr
