"""Outpainting: the canvas geometry, and the inpainting pipeline painting only the new area."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ronghe.engines.diffusion.generate import GenerationRequest, ImageEngine
from ronghe.engines.diffusion.outpaint import POSITIONS, canvas_size, extend, offset
from ronghe.engines.diffusion.pipelines import INPAINT
from tests.image_support import PROMPT


def test_canvas_is_ratio_times_the_source_rounded_to_the_size_step() -> None:
    assert canvas_size(64, 48, 1.5, 8) == (96, 72)
    assert canvas_size(64, 48, 1.25, 8) == (80, 64)  # 60 rounds to 64
    assert canvas_size(100, 60, 2.0, 8) == (200, 120)
    # Never smaller than the source, however the rounding falls.
    assert canvas_size(9, 9, 1.25, 8) == (16, 16)


@pytest.mark.parametrize(("position", "corner"), [
    ("topleft", (0, 0)), ("topmiddle", (16, 0)), ("topright", (32, 0)),
    ("middleleft", (0, 12)), ("middle", (16, 12)), ("middleright", (32, 12)),
    ("bottomleft", (0, 24)), ("bottommiddle", (16, 24)), ("bottomright", (32, 24))])
def test_nine_positions_place_the_source(position: str, corner: tuple[int, int]) -> None:
    assert offset((96, 72), (64, 48), position) == corner


def test_extend_keeps_the_source_and_masks_the_rest() -> None:
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    image, mask, (x, y) = extend(source, (96, 72), "bottomright")
    assert image.size == mask.size == (96, 72) and (x, y) == (32, 24)
    pixels, held = np.asarray(image), np.asarray(mask)
    assert np.array_equal(pixels[24:, 32:], np.asarray(source))
    assert (held[24:, 32:] == 0).all() and (held == 255).sum() == 96 * 72 - 64 * 48
    # The new area continues the edge (what the VAE sees there), not a flat colour.
    assert np.array_equal(pixels[0, 32:], np.asarray(source)[0])
    with pytest.raises(ValueError, match="topleft, topmiddle"):
        offset((96, 72), (64, 48), "center")
    assert len(POSITIONS) == 9


def test_inpainting_paints_only_the_new_area(engine: ImageEngine) -> None:
    rng = np.random.default_rng(1)
    source = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    canvas, mask, (x, y) = extend(source, (96, 72), "middle")
    results = [engine.generate(GenerationRequest(
        prompt=PROMPT, seeds=[seed], width=96, height=72, steps=6, guidance=5.0,
        model="ronghe-demo", init_image=canvas, mask_image=mask, strength=1.0)).images[0]
        for seed in (0, 1)]
    for image in results:
        assert image.size == (96, 72)
        kept = np.asarray(image)[y:y + 48, x:x + 64]
        assert np.array_equal(kept, np.asarray(source))
    new = np.asarray(mask) == 255
    painted = [np.asarray(im, np.float32)[new] for im in results]
    # The new area is the model's: it is not the edge fill, and it follows the seed.
    assert np.abs(painted[0] - np.asarray(canvas, np.float32)[new]).mean() > 5
    assert np.abs(painted[0] - painted[1]).mean() > 1
    with pytest.raises(ValueError, match="inpainting"):
        _ = GenerationRequest(prompt="x", seeds=[0], width=8, height=8, steps=1,
                              guidance=1.0, mask_image=mask).mode


def test_four_channel_unets_use_diffusers_inpainting_pipeline(four_channel: ImageEngine) -> None:
    rng = np.random.default_rng(2)
    source = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    canvas, mask, (x, y) = extend(source, (128, 96), "topright")
    result = four_channel.generate(GenerationRequest(
        prompt=PROMPT, seeds=[0, 1], width=128, height=96, steps=4, guidance=5.0,
        model="four", init_image=canvas, mask_image=mask, strength=1.0))
    loaded = four_channel.cache.model(four_channel.registry.get("four"))
    assert type(loaded.derived[(INPAINT, ())]).__name__ == "StableDiffusionInpaintPipeline"
    assert result.steps_run == 4 and len(result.images) == 2
    new = np.asarray(mask) == 255
    for image in result.images:
        assert image.size == (128, 96)
        assert np.array_equal(np.asarray(image)[y:y + 48, x:x + 64], np.asarray(source))
        assert np.abs(np.asarray(image, np.float32)[new]
                      - np.asarray(canvas, np.float32)[new]).mean() > 5
