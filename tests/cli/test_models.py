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
