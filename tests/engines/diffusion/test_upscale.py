"""The upscale module's arithmetic and names, without a model (the HTTP tests run models)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ronghe.engines.diffusion import upscalers
from ronghe.engines.diffusion.upscale import (
    BUILT_IN,
    HiresFix,
    built_in,
    model_runs,
    scaled,
    upscale,
)


def test_a1111_names_in_any_case() -> None:
    assert built_in("latent (Nearest-Exact)") == "Latent (nearest-exact)"
    assert built_in(" LANCZOS ") == "Lanczos"
    assert built_in("R-ESRGAN 4x+") is None
    assert len(BUILT_IN) == 8


def test_sizes_and_steps() -> None:
    assert scaled(512, 768, 1.5) == (768, 1152)
    assert scaled(64, 64, 1.3) == (80, 80)  # 83.2 rounds to a multiple of 8
    assert scaled(1024, 576, 2, 16) == (2048, 1152)
    hires = HiresFix(2, denoise=0.5, steps=0)
    assert hires.size(100 * 8, 60 * 8) == (1600, 960)
    assert (hires.second_steps(20), hires.denoised(20)) == (20, 10)
    assert HiresFix(2, steps=7, denoise=0.3).denoised(20) == 2


def test_a_model_runs_until_it_reaches_the_scale_at_most_three_times() -> None:
    assert model_runs(4, (100, 100), (200, 200)) == 1
    assert model_runs(2, (100, 100), (200, 200)) == 1
    assert model_runs(2, (100, 100), (300, 300)) == 2
    assert model_runs(2, (100, 100), (400, 400)) == 2
    assert model_runs(2, (10, 10), (1000, 1000)) == 3
    assert model_runs(1, (100, 100), (400, 400)) == 1


def test_resamplers_need_no_model() -> None:
    image = Image.new("RGB", (10, 6), (1, 2, 3))
    assert upscale(image, (25, 15), "Nearest").getpixel((24, 14)) == (1, 2, 3)


def test_the_folder_lists_problems_and_reserves_built_in_names(tmp_path: Path) -> None:
    (tmp_path / "Lanczos.pth").write_bytes(b"x")
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "notes.txt").write_text("ignored")
    found = {u.name: u for u in upscalers.scan(tmp_path, BUILT_IN)}
    assert set(found) == {"Lanczos", "broken"}
    assert "built-in" in (found["Lanczos"].problem or "")
    assert (found["broken"].problem or "").startswith("not an upscaler model spandrel knows")
    assert upscalers.scan(tmp_path / "missing") == []
    assert upscalers.find(tmp_path, "BROKEN", BUILT_IN) == found["broken"]
