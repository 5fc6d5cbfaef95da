"""``ronghe models pull URL`` against a file server on 127.0.0.1 (tests/download_support.py):
resume after a dropped connection, SHA-256 checks, free space, pickles, Civitai links, no
network, Ctrl-C and a full disk (the last two in a child process, as a user runs it)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ronghe.cli import app
from tests.conftest import DemoModel, free_port
from tests.download_support import (
    Civitai,
    ModelServer,
    chat_gguf,
    demo_checkpoint,
    model_server,
    sha256_of,
)

FILE = "shapes.safetensors"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Path:
    return demo_checkpoint(demo_model.path, tmp_path_factory.mktemp("ckpt") / FILE)


@pytest.fixture
def server(checkpoint: Path) -> Iterator[ModelServer]:
    with model_server(ModelServer(files={FILE: checkpoint})) as running:
        yield running


def pull(data: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """The CLI in this process: exit code, its JSON lines, everything it printed."""
    result = CliRunner().invoke(app, ["models", "pull", *args, "--json", "--data-dir",
                                      str(data)])
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, events, result.output


def leftovers(data: Path) -> list[str]:
    staging = data / "downloads"
    return sorted(str(p.relative_to(staging)) for p in staging.rglob("*")) \
        if staging.exists() else []


def test_a_dropped_connection_resumes_and_the_model_is_served(
        tmp_path: Path, server: ModelServer, checkpoint: Path) -> None:
    server.cut_once.add(f"/files/{FILE}")
    code, events, output = pull(tmp_path / "d", f"{server.url}/files/{FILE}", "--sha256",
                                sha256_of(checkpoint))
    assert code == 0, output
    done = events[-1]
    assert done["event"] == "done" and done["name"] == "shapes" and done["kind"] == "image"
    assert done["family"] == "demo" and done["problem"] is None
    target = tmp_path / "d" / "models" / FILE
    assert target.read_bytes() == checkpoint.read_bytes()
    # The first answer stopped at half; the retry asked for the rest only.
    half = checkpoint.stat().st_size // 2
    assert server.ranges(f"/files/{FILE}") == ["bytes=0-0", None, f"bytes={half}-"]
    side = json.loads((tmp_path / "d" / "models" / "shapes.ronghe.json").read_text())
    assert side["source"]["sha256"] == sha256_of(checkpoint)
    assert side["source"]["url"] == f"{server.url}/files/{FILE}"
    assert leftovers(tmp_path / "d") == []
    phases = [e["phase"] for e in events if e["event"] == "progress"]
    assert phases[0] == "resolving" and "downloading" in phases and "verifying" in phases
    # The models folder serves it, with its size on disk.
    listed = CliRunner().invoke(app, ["models", "--json", "--data-dir", str(tmp_path / "d")])
    row = next(m for m in json.loads(listed.stdout)["image"] if m["name"] == "shapes")
    assert row["family"] == "demo" and row["bytes"] == checkpoint.stat().st_size
    # The same pull again has nothing to do.
    code, events, output = pull(tmp_path / "d", f"{server.url}/files/{FILE}")
    assert code == 0 and events[-1]["already"] is True, output


def test_a_sha256_mismatch_leaves_nothing_behind(tmp_path: Path, server: ModelServer) -> None:
    code, events, _ = pull(tmp_path / "d", f"{server.url}/files/{FILE}", "--sha256", "0" * 64)
    assert code == 1
    assert "SHA-256" in events[-1]["message"] and events[-1]["kept"] is False
    assert not (tmp_path / "d" / "models" / FILE).exists()
    assert leftovers(tmp_path / "d") == []


def test_free_space_is_checked_before_downloading(tmp_path: Path, server: ModelServer) -> None:
    server.announce[f"/files/{FILE}"] = 10**15  # a petabyte: no disk here has it
    code, events, output = pull(tmp_path / "d", f"{server.url}/files/{FILE}")
    assert code == 1 and "not enough free disk space" in events[-1]["message"], output
    assert server.ranges(f"/files/{FILE}") == ["bytes=0-0"]  # only the probe


def test_pickles_are_refused_unless_allowed(tmp_path: Path, server: ModelServer,
                                            checkpoint: Path, demo_model: DemoModel) -> None:
    ckpt = demo_checkpoint(demo_model.path, tmp_path / "old.ckpt")
    server.files["old.ckpt"] = ckpt
    code, events, _ = pull(tmp_path / "d", f"{server.url}/files/old.ckpt")
    assert code == 1 and "--allow-pickle" in events[-1]["message"]
    assert server.ranges("/files/old.ckpt") == ["bytes=0-0"]  # refused before downloading
    code, events, output = pull(tmp_path / "d", f"{server.url}/files/old.ckpt",
                                "--allow-pickle")
    assert code == 0 and events[-1]["family"] == "demo", output
    # A pickle renamed to .safetensors is caught by its first bytes.
    server.files["evil.safetensors"] = ckpt
    code, events, _ = pull(tmp_path / "d", f"{server.url}/files/evil.safetensors")
    assert code == 1 and "not a safetensors file" in events[-1]["message"]
    assert not (tmp_path / "d" / "models" / "evil.safetensors").exists()
    assert leftovers(tmp_path / "d") == []


def test_civitai_links_are_checked_against_civitai_metadata(
        tmp_path: Path, server: ModelServer, checkpoint: Path, demo_model: DemoModel) -> None:
    from tests.image_support import lora_weights

    lora = tmp_path / "lora.safetensors"
    lora.write_bytes(lora_weights(demo_model.path))
    server.civitai[101] = Civitai("shapesXL_v2.safetensors", checkpoint, {
        "id": 101, "name": "v2", "baseModel": "Other", "model": {"name": "Shapes",
                                                                 "type": "Checkpoint"},
        "files": [{"name": "shapesXL_v2.safetensors", "primary": True,
                   "hashes": {"SHA256": sha256_of(checkpoint).upper()}}]})
    server.civitai[102] = Civitai("stars.safetensors", lora, {
        "id": 102, "name": "v1", "model": {"name": "Stars", "type": "LORA"},
        "files": [{"name": "stars.safetensors", "hashes": {"SHA256": "ab" * 32}}]})
    code, events, output = pull(tmp_path / "d", f"{server.url}/api/download/models/101")
    assert code == 0, output
    assert events[-1]["name"] == "shapesXL_v2" and events[-1]["kind"] == "image"
    side = json.loads((tmp_path / "d" / "models" / "shapesXL_v2.ronghe.json").read_text())
    assert side["source"]["sha256"] == sha256_of(checkpoint)  # from Civitai, and checked
    assert side["description"] == "Shapes v2"
    # A LoRA goes to the LoRA folder; Civitai's hash that does not match refuses it.
    code, events, _ = pull(tmp_path / "d", f"{server.url}/api/download/models/102")
    assert code == 1 and "SHA-256" in events[-1]["message"]
    server.civitai[102].meta["files"][0]["hashes"]["SHA256"] = sha256_of(lora)
    code, events, output = pull(tmp_path / "d", f"{server.url}/api/download/models/102")
    assert code == 0 and events[-1]["kind"] == "lora", output
    assert (tmp_path / "d" / "loras" / "stars.safetensors").is_file()


def test_the_bundled_chat_gguf_by_url_is_a_chat_model(tmp_path: Path,
                                                       server: ModelServer) -> None:
    server.files["tiny-chat.gguf"] = chat_gguf()
    code, events, output = pull(tmp_path / "d", f"{server.url}/files/tiny-chat.gguf")
    assert code == 0, output
    assert (events[-1]["kind"], events[-1]["family"]) == ("chat", None)
    listed = CliRunner().invoke(app, ["models", "--json", "--data-dir", str(tmp_path / "d")])
    chat = {m["name"]: m for m in json.loads(listed.stdout)["chat"]}
    assert chat["tiny-chat"]["path"].endswith("models/tiny-chat.gguf")


def test_no_network_is_one_clear_line_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    code, events, output = pull(tmp_path / "d", f"http://127.0.0.1:{free_port()}/m.safetensors")
    assert code == 1 and time.monotonic() - started < 10
    assert events[-1]["message"].startswith("cannot reach 127.0.0.1")
    assert "Traceback" not in output


def test_bad_requests_name_their_option(tmp_path: Path, server: ModelServer) -> None:
    for args, words in ((["nothing like a ref"], "ref:"),
                        ([f"{server.url}/files/{FILE}", "--kind", "movie"], "kind:"),
                        ([f"{server.url}/files/{FILE}", "--sha256", "xyz"], "sha256:"),
                        ([f"{server.url}/files/{FILE}", "--name", ".hidden"], "name:")):
        code, events, _ = pull(tmp_path / "d", *args)
        assert code == 1 and events[-1]["message"].startswith(words), events


# --- as a user runs it: a child process, Ctrl-C, a disk that fills up


def spawn(data: Path, url: str, limit: int | None = None) -> subprocess.Popen[str]:
    def quota() -> None:  # a per-process file-size limit: writes past it fail (EFBIG)
        # Ctrl-C as a terminal delivers it: a shell starts the command with SIGINT at its
        # default and unblocked, whatever this test process inherited (seen: run after other
        # tests in the same worker, the child ignored the Ctrl-C and downloaded on).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, "-m", "ronghe.cli", "models", "pull", url, "--json",
                             "--data-dir", str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=quota,
                            env={**os.environ, "RONGHE_LOG_LEVEL": "warning"})


def test_ctrl_c_keeps_the_partial_file_and_the_next_pull_resumes(
        tmp_path: Path, server: ModelServer, checkpoint: Path) -> None:
    # Progress every 0.5 s as the bytes come, and the file stops at 2.5 MB (of 6): it cannot
    # finish before the Ctrl-C, however late this test gets to send it.
    server.rate, data, url = 1_000_000, tmp_path / "d", f"{server.url}/files/{FILE}"
    server.hold(2_500_000)
    try:
        proc = spawn(data, url)
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "progress" and event["bytes_done"] > 1_000_000:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        server.release()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again to resume" in err
    parts = list((data / "downloads").rglob(f"{FILE}.part"))
    assert len(parts) == 1 and parts[0].stat().st_size > 1_000_000
    kept = parts[0].stat().st_size
    assert not (data / "models" / FILE).exists()
    server.rate = None
    again = spawn(data, url)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["event"] == "done"
    assert (data / "models" / FILE).read_bytes() == checkpoint.read_bytes()
    assert server.ranges(f"/files/{FILE}")[-1] == f"bytes={kept}-"


def test_a_full_disk_is_a_clear_error_and_the_pull_resumes_later(
        tmp_path: Path, server: ModelServer, checkpoint: Path) -> None:
    data, url = tmp_path / "d", f"{server.url}/files/{FILE}"
    proc = spawn(data, url, limit=1_000_000)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "the disk is full" in err and "pull again" in err
    assert "Traceback" not in err
    assert not (data / "models" / FILE).exists()
    again = spawn(data, url)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert (data / "models" / FILE).read_bytes() == checkpoint.read_bytes()
