"""The latent blend: strength and A1111's latent fills on the demo's 3-channel UNet and on a
4-channel one (which takes diffusers' inpainting pipeline for the other fills)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from ronghe.engines.diffusion.generate import GenerationRequest, ImageEngine
from ronghe.engines.diffusion.inpaint import LatentBlend
from ronghe.engines.diffusion.masking import LATENT_NOISE, LATENT_NOTHING, ORIGINAL
from ronghe.engines.diffusion.pipelines import IMG2IMG, INPAINT
from tests.image_support import PROMPT, drawn

SIZE = (64, 64)
BOX = (0, 0, 31, 63)  # the left half repaints


def source() -> Image.Image:
    return drawn("green", "square", "white", size=64)


def left_half() -> Image.Image:
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).rectangle(BOX, fill=255)
    return mask


def paint(engine: ImageEngine, model: str, strength: float, fill: int,
          steps: int = 8) -> tuple[np.ndarray, int]:
    result = engine.generate(GenerationRequest(
        prompt=PROMPT, seeds=[3], width=SIZE[0], height=SIZE[1], steps=steps, guidance=5.0,
        model=model, init_image=source(), mask_image=left_half(), strength=strength,
        inpainting_fill=fill))
    return np.asarray(result.images[0], np.float32), result.steps_run


def masked_change(image: np.ndarray) -> float:
    return float(np.abs(image[:, :32] - np.asarray(source(), np.float32)[:, :32]).mean())


def test_strength_decides_how_much_the_masked_area_changes(engine: ImageEngine) -> None:
    light, light_steps = paint(engine, "ronghe-demo", 0.25, ORIGINAL)
    full, full_steps = paint(engine, "ronghe-demo", 1.0, ORIGINAL)
    # img2img runs the last quarter of the schedule; strength 1 all of it, from noise.
    assert (light_steps, full_steps) == (2, 8)
    assert masked_change(light) < masked_change(full)
    for image in (light, full):  # the kept half is the source's, exactly
        assert np.array_equal(image[:, 34:], np.asarray(source(), np.float32)[:, 34:])


def test_latent_fills_start_the_masked_area_elsewhere(engine: ImageEngine) -> None:
    # (fill, 0, works on the pixels before the engine: masking.py)
    images = {fill: paint(engine, "ronghe-demo", 0.5, fill)[0]
              for fill in (ORIGINAL, LATENT_NOISE, LATENT_NOTHING)}
    for image in images.values():
        assert np.array_equal(image[:, 34:], np.asarray(source(), np.float32)[:, 34:])
    # Each start gives its own masked area; from the picture it stays nearest the picture.
    fills = list(images)
    for i, a in enumerate(fills):
        for b in fills[i + 1:]:
            assert np.abs(images[a][:, :30] - images[b][:, :30]).mean() > 1, (a, b)
    assert masked_change(images[ORIGINAL]) < masked_change(images[LATENT_NOISE])
    # At strength 1 every fill starts from pure noise (as diffusers' inpainting pipeline).
    assert np.array_equal(paint(engine, "ronghe-demo", 1.0, LATENT_NOISE)[0],
                          paint(engine, "ronghe-demo", 1.0, ORIGINAL)[0])


def test_the_start_keeps_the_source_outside_the_mask(engine: ImageEngine) -> None:
    pipe = engine.cache.model(engine.registry.get("ronghe-demo")).base
    mask = left_half()
    nothing = LatentBlend(pipe, source(), mask, [1, 2], LATENT_NOTHING)
    noise = LatentBlend(pipe, source(), mask, [1, 2], LATENT_NOISE)
    original = LatentBlend(pipe, source(), mask, [1, 2], ORIGINAL)
    held = nothing.mask.bool().expand_as(nothing.start)
    assert nothing.start.shape[0] == 2
    assert torch.equal(nothing.start[~held], original.start[~held])
    assert torch.equal(noise.start[~held], original.start[~held])
    assert (nothing.start[held] == 0).all()
    # A fresh noise per seed: unit variance, and another for the other image.
    assert 0.7 < float(noise.start[held].std()) < 1.3
    assert not torch.equal(noise.start[0][held[0]], noise.start[1][held[1]])


def test_a_four_channel_unet_takes_latent_fills_on_img2img(four_channel: ImageEngine) -> None:
    loaded = four_channel.cache.model(four_channel.registry.get("four"))
    original, _ = paint(four_channel, "four", 0.6, ORIGINAL, steps=4)
    assert (INPAINT, ()) in loaded.derived and (IMG2IMG, ()) not in loaded.derived
    nothing, steps = paint(four_channel, "four", 0.6, LATENT_NOTHING, steps=4)
    assert (IMG2IMG, ()) in loaded.derived and steps == 2
    assert np.array_equal(nothing[:, 34:], np.asarray(source(), np.float32)[:, 34:])
    assert np.abs(nothing[:, :30] - original[:, :30]).mean() > 1


def test_a_latent_fill_on_an_inpainting_unet_is_refused(four_channel: ImageEngine,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers.configuration_utils import FrozenDict

    unet = four_channel.cache.model(four_channel.registry.get("four")).base.unet
    # What a diffusers folder of an inpainting checkpoint has (single files are refused).
    monkeypatch.setattr(unet, "_internal_dict", FrozenDict({**unet.config, "in_channels": 9}))
    with pytest.raises(ValueError, match=r"inpainting_fill: 2 .*an inpainting checkpoint"):
        paint(four_channel, "four", 0.6, LATENT_NOISE, steps=2)
