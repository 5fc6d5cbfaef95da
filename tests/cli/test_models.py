"""``ronghe models``: configured image and chat models, with problems shown."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ronghe.cli import app
from tests.conftest import DemoModel


def test_models_lists_image_and_chat_models(tmp_path: Path, demo_model: DemoModel) -> None:
    config = tmp_path / "ronghe.yaml"
    config.write_text(yaml.safe_dump({"image_models": [
        demo_model.spec(),
        {"name": "sd15", "path": str(tmp_path / "missing.safetensors"), "family": "sd15"}]}))
    runner = CliRunner()
    result = runner.invoke(app, ["models", "--data-dir", str(tmp_path / "d"), "--config",
                                 str(config), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    demo, sd15 = listed["image"]
    assert (demo["name"], demo["aliases"], demo["controlnets"]) == \
        ("ronghe-demo", ["Artist_V0.1.3"], ["canny"])
    assert demo["default"] and demo["problem"] is None and demo["native_resolution"] == 32
    assert sd15["single_file"] and "missing" in sd15["problem"]
    assert listed["chat"][0]["name"] == "smollm2"


def test_models_add_scan_and_problems(tmp_path: Path, demo_model: DemoModel) -> None:
    import torch
    from safetensors.torch import save_file

    from tests.checkpoint_support import write_checkpoint

    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "d")]
    source = write_checkpoint(demo_model.path, tmp_path / "in" / "shapes.safetensors")
    added = runner.invoke(app, ["models", "add", str(source), "--name", "mine", *data])
    assert added.exit_code == 0, added.output
    assert (tmp_path / "d" / "models" / "mine.safetensors").is_file()
    # A layout nobody knows is refused with the reason; a wrong --family too.
    save_file({"weight": torch.zeros(2)}, tmp_path / "in" / "odd.safetensors")
    odd = runner.invoke(app, ["models", "add", str(tmp_path / "in" / "odd.safetensors"), *data])
    assert odd.exit_code == 1 and "unknown layout" in odd.output
    wrong = runner.invoke(app, ["models", "add", str(source), "--name", "x", "--family",
                                "sdxl", *data])
    assert wrong.exit_code == 1 and "given as sdxl" in wrong.output
    linked = runner.invoke(app, ["models", "add", str(source), "--name", "x", "--family",
                                 "sdxl", "--force", "--link", *data])
    assert linked.exit_code == 0 and (tmp_path / "d" / "models" / "x.safetensors").is_symlink()
    # Dropped in by hand, cut short by an interrupted copy.
    cut = tmp_path / "d" / "models" / "cut.ckpt"
    cut.write_bytes(write_checkpoint(demo_model.path, tmp_path / "c.ckpt").read_bytes()[:9000])
    scanned = runner.invoke(app, ["models", "scan", "--json", *data])
    assert scanned.exit_code == 0, scanned.output
    found = {m["name"]: m for m in json.loads(scanned.output)["image"]}
    assert found["mine"]["family"] == "demo" and found["mine"]["problem"] is None
    assert "truncated" in found["cut"]["problem"] and "given as sdxl" in found["x"]["problem"]
    listed = runner.invoke(app, ["models", "--json", *data])
    images = {m["name"]: m for m in json.loads(listed.output)["image"]}
    assert images["mine"]["source"] == "folder" and images["ronghe-demo"]["source"] == "config"
    assert "truncated" in images["cut"]["problem"]
    from ronghe.cli import out

    # The console is made at import, so COLUMNS set here comes too late: widen it directly
    # (a worker of the parallel suite has no terminal, and rich then assumes 80 columns).
    out.width = 300
    table = runner.invoke(app, ["models", *data], env={"COLUMNS": "300"})
    assert table.exit_code == 0 and "truncated" in table.output
