"""``ronghe models pull org/name`` through ``huggingface_hub``, its endpoint pointed at the
Hub stand-in of tests/download_support.py (the real Hub is unreachable from tests): which
files a folder pull fetches, gated repos and tokens, single files, the catalogue."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ronghe.cli import app
from ronghe.downloads import catalogue
from tests.conftest import DemoModel
from tests.download_support import ModelServer, Repo, chat_gguf, demo_checkpoint, model_server

REPO = "ronghe-test/shapes"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory,
        demo_model: DemoModel) -> Iterator[ModelServer]:
    root = tmp_path_factory.mktemp("hub")
    folder = {str(p.relative_to(demo_model.path)): p for p in demo_model.path.rglob("*")
              if p.is_file()}
    # What real diffusers repos also hold: an fp16 variant of a component (here the same
    # weights, under the variant's name), a pickle copy, a single-file checkpoint beside the
    # folder, a README.  A pull takes the variant, never the pickle or the duplicate.
    fp16 = root / "diffusion_pytorch_model.fp16.safetensors"
    shutil.copyfile(demo_model.path / "unet" / "diffusion_pytorch_model.safetensors", fp16)
    pickle = root / "diffusion_pytorch_model.bin"
    pickle.write_bytes(b"\x80\x04 not really a pickle")
    readme = root / "README.md"
    readme.write_text("# shapes\n")
    checkpoint = demo_checkpoint(demo_model.path, root / "shapes.safetensors")
    folder.update({"unet/diffusion_pytorch_model.fp16.safetensors": fp16,
                   "unet/diffusion_pytorch_model.bin": pickle, "README.md": readme,
                   "shapes.safetensors": checkpoint})
    repos = {
        REPO: Repo(folder),
        "ronghe-test/gated": Repo({"shapes.safetensors": checkpoint}, gated=True,
                                  licence="shapes-community-licence",
                                  accepted=("hf_accepted",)),
        "ronghe-test/several": Repo({"a.safetensors": checkpoint, "b.safetensors": checkpoint}),
        "ronghe-test/pickles": Repo({"model.ckpt": pickle}),
        # The catalogue's chat entry, with the bundled GGUF standing in for Qwen's.
        catalogue.BY_NAME["qwen2.5-0.5b"].repo: Repo(
            {"qwen2.5-0.5b-instruct-q4_k_m.gguf": chat_gguf(), "README.md": readme}),
    }
    with model_server(ModelServer(repos=repos)) as running:
        yield running


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/conftest.py keeps the test process off the Hub (HF_HUB_OFFLINE=1, read by
    huggingface_hub at import); these tests reach only the stand-in, so they turn it off."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def pull(hub: ModelServer, data: Path, *args: str,
         env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(
        app, ["models", "pull", *args, "--json", "--data-dir", str(data)],
        env={"RONGHE_HF_ENDPOINT": hub.url, "HF_TOKEN": "", **(env or {})})
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, events, result.output


def fetched(hub: ModelServer, repo: str) -> set[str]:
    prefix = f"/{repo}/resolve/"
    return {p.removeprefix(prefix).split("/", 1)[1] for p, _ in hub.requests
            if p.startswith(prefix)}


def test_a_diffusers_repo_is_pulled_as_one_copy_of_each_component(
        tmp_path: Path, hub: ModelServer) -> None:
    code, events, output = pull(hub, tmp_path / "d", REPO)
    assert code == 0, output
    done = events[-1]
    assert (done["name"], done["kind"], done["family"]) == ("shapes", "image", "demo")
    files = fetched(hub, REPO)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in files
    assert not {"unet/diffusion_pytorch_model.bin", "shapes.safetensors", "README.md",
                "unet/diffusion_pytorch_model.safetensors"} & files
    folder = tmp_path / "d" / "models" / "shapes"
    # The fp16 variant is installed under the plain name diffusers loads by default.
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(folder.rglob("*.fp16.*"))
    meta = json.loads((folder / "ronghe.json").read_text())
    assert meta["source"]["repo"] == REPO and meta["source"]["revision"] == "0123456789abcdef" \
        "0123456789abcdef01234567"
    assert meta["source"]["files"]["unet/diffusion_pytorch_model.fp16.safetensors"]
    assert meta["licence"]["url"] == f"{hub.url}/{REPO}"
    assert not (tmp_path / "d" / "downloads").exists() or not any(
        (tmp_path / "d" / "downloads").iterdir())


def test_gated_repos_name_the_licence_page_and_take_a_token(
        tmp_path: Path, hub: ModelServer) -> None:
    code, events, _ = pull(hub, tmp_path / "d", "ronghe-test/gated")
    message = events[-1]["message"]
    assert code == 1 and f"{hub.url}/ronghe-test/gated" in message and "HF_TOKEN" in message
    assert "shapes-community-licence" in message
    assert fetched(hub, "ronghe-test/gated") == set()  # refused before any download
    code, events, _ = pull(hub, tmp_path / "d", "ronghe-test/gated",
                           env={"HF_TOKEN": "hf_not_accepted"})
    assert code == 1 and "HTTP 403" in events[-1]["message"]
    assert "accept its licence" in events[-1]["message"]
    code, events, output = pull(hub, tmp_path / "d", "ronghe-test/gated",
                                env={"RONGHE_HF_TOKEN": "hf_accepted"})
    assert code == 0 and events[-1]["name"] == "shapes", output


def test_single_file_repos(tmp_path: Path, hub: ModelServer) -> None:
    code, events, _ = pull(hub, tmp_path / "d", "ronghe-test/several")
    assert code == 1 and "--file" in events[-1]["message"]
    assert "a.safetensors" in events[-1]["message"]
    code, events, output = pull(hub, tmp_path / "d", "ronghe-test/several", "--file",
                                "b.safetensors", "--name", "bee")
    assert code == 0 and events[-1]["path"].endswith("models/bee.safetensors"), output
    code, events, _ = pull(hub, tmp_path / "d", "ronghe-test/pickles")
    assert code == 1 and "--allow-pickle" in events[-1]["message"]
    code, events, _ = pull(hub, tmp_path / "d", "ronghe-test/missing")
    assert code == 1 and "no model repo 'ronghe-test/missing'" in events[-1]["message"]
    code, events, _ = pull(hub, tmp_path / "d", REPO, "--revision", "v9")
    assert code == 1 and "no revision 'v9'" in events[-1]["message"]


def test_no_network_is_one_clear_line(tmp_path: Path, hub: ModelServer) -> None:
    from tests.conftest import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    code, events, output = pull(hub, tmp_path / "d", REPO,
                                env={"RONGHE_HF_ENDPOINT": nowhere})
    assert code == 1 and events[-1]["message"].startswith(f"cannot reach the Hub at {nowhere}")
    assert "Traceback" not in output


def test_a_catalogue_chat_model_is_pulled_by_its_short_name(
        tmp_path: Path, hub: ModelServer) -> None:
    listed = CliRunner().invoke(app, ["models", "pull", "--list", "--json", "--data-dir",
                                      str(tmp_path / "d")])
    names = [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    assert names == [e.name for e in catalogue.ENTRIES] and "sdxl-turbo" in names
    code, events, output = pull(hub, tmp_path / "d", "qwen2.5-0.5b")
    assert code == 0, output
    assert events[-1]["kind"] == "chat" and events[-1]["path"].endswith(
        "models/qwen2.5-0.5b.gguf")
    assert fetched(hub, catalogue.BY_NAME["qwen2.5-0.5b"].repo) == {
        "qwen2.5-0.5b-instruct-q4_k_m.gguf"}
    models = CliRunner().invoke(app, ["models", "--json", "--data-dir", str(tmp_path / "d")])
    chat = {m["name"]: m for m in json.loads(models.stdout)["chat"]}
    assert chat["qwen2.5-0.5b"]["bytes"] == chat_gguf().stat().st_size
    listed = CliRunner().invoke(app, ["models", "pull", "--list", "--json", "--data-dir",
                                      str(tmp_path / "d")])
    rows = {json.loads(line)["name"]: json.loads(line) for line in listed.stdout.splitlines()}
    assert rows["qwen2.5-0.5b"]["installed"] and not rows["sd15"]["installed"]
    # Removed by name, with its sidecar.
    removed = CliRunner().invoke(app, ["models", "rm", "qwen2.5-0.5b", "--yes", "--json",
                                       "--data-dir", str(tmp_path / "d")])
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["kind"] == "chat"
    assert not list((tmp_path / "d" / "models").glob("qwen2.5-0.5b*"))


def test_sharded_fp16_variants_are_installed_under_the_plain_names(tmp_path: Path) -> None:
    from ronghe.downloads.hub import HubFile, HubRepo, choose, drop_variants

    names = ["model_index.json", "transformer/config.json",
             "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
             "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
             "transformer/diffusion_pytorch_model.safetensors.index.json",
             "transformer/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
             "transformer/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
             "transformer/diffusion_pytorch_model.safetensors.index.fp16.json",
             "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
             "vae/diffusion_pytorch_model.non_ema.safetensors", "flux1.safetensors"]
    repo = HubRepo("a/b", "c" * 40, [HubFile(n, 1, None) for n in names], False, "")
    chosen = sorted(f.path for f in choose(repo, None, None, allow_pickle=False))
    assert chosen == sorted([
        "model_index.json", "transformer/config.json",
        "transformer/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "transformer/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        "transformer/diffusion_pytorch_model.safetensors.index.fp16.json",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors"])
    for name in chosen:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    index = tmp_path / "transformer/diffusion_pytorch_model.safetensors.index.fp16.json"
    index.write_text(json.dumps({"weight_map": {
        "a": "diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "b": "diffusion_pytorch_model.fp16-00002-of-00002.safetensors"}}))
    drop_variants(tmp_path)
    assert sorted(p.name for p in (tmp_path / "transformer").iterdir()) == [
        "config.json", "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
        "diffusion_pytorch_model.safetensors.index.json"]
    plain = json.loads((tmp_path / "transformer/diffusion_pytorch_model.safetensors.index.json")
                       .read_text())
    assert plain["weight_map"] == {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                                   "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}
