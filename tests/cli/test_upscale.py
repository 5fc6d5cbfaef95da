"""``ronghe generate --hires``, ``ronghe upscalers`` and ``ronghe upscale`` against a real
server (issue 29), with a tiny ESRGAN dropped into its upscalers folder while it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ronghe.engines.diffusion import upscalers
from tests.api.images.test_upscale import tiny_esrgan
from tests.cli.test_user_commands import SMALL, as_json, logged_in, ronghe
from tests.server_support import Server


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config"


def test_hires_then_upscale_from_the_command_line(server: Server, config: Path,
                                                  tmp_path: Path) -> None:
    tiny_esrgan(upscalers.folder(server.data_dir / "models") / "cli-esrgan-2x.pth", 2)
    logged_in(server, config)
    made = as_json(ronghe(config, "generate", "a red circle", "--hires", "2", "--hr-upscaler",
                          "Lanczos", "--hr-steps", "2", "--json", "--out", str(tmp_path),
                          *SMALL))
    path = Path(made["images"][0]["path"])
    assert (made["images"][0]["width"], made["images"][0]["height"]) == (128, 128)
    assert Image.open(path).size == (128, 128)
    r = ronghe(config, "generate", "a circle", "--hr-upscaler", "Lanczos", *SMALL)
    assert r.exit_code == 1 and "need --hires SCALE" in r.stderr
    r = ronghe(config, "generate", "a circle", "--hires", "9", *SMALL)
    assert r.exit_code == 1 and "hr_scale: must be a number 1-4" in r.stderr

    rows = as_json(ronghe(config, "upscalers", "--json"))
    assert {"name": "cli-esrgan-2x", "kind": "model", "architecture": "ESRGAN",
            "scale": 2}.items() <= next(x for x in rows if x["name"] == "cli-esrgan-2x").items()
    assert "cli-esrgan-2x" in ronghe(config, "upscalers").stdout
    # A local file (uploaded first), then an image on the server by its URL.
    out = tmp_path / "up"
    big = as_json(ronghe(config, "upscale", str(path), "-u", "cli-esrgan-2x", "--json",
                         "--out", str(out)))
    assert Image.open(big["images"][0]["path"]).size == (256, 256)
    r = ronghe(config, "upscale", made["images"][0]["url"], "--scale", "1.5", "--out",
               str(out))
    assert r.exit_code == 0, r.output
    assert Image.open(r.stdout.strip()).size == (192, 192)
    r = ronghe(config, "upscale", str(path), "-u", "Latent")
    assert r.exit_code == 1 and "upscaler: 'Latent' upscales latents" in r.stderr
