"""The mask's geometry around the model: feathering, the only-masked crop, fill."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ronghe.engines.diffusion import masking
from ronghe.engines.diffusion.masking import MaskOptions


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def test_feathering_stays_within_a1111s_kernel() -> None:
    feathered = np.asarray(masking.feather(box_mask((120, 20), (40, 0, 79, 19)), 4))
    row = feathered[10]
    # kernel 2*int(2.5*4+0.5)+1 = 21: at most 10 pixels beyond the edge are touched.
    assert row[30:40].max() > 0 and row[:30].max() == 0 and row[90:].max() == 0
    assert row[50:70].min() == 255


def test_only_masked_crops_to_the_ratio_and_pastes_back() -> None:
    source = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 200, 3),
                                                               dtype=np.uint8))
    prepared = masking.prepare(source, box_mask((200, 100), (150, 10, 169, 29)), (64, 32),
                               MaskOptions(blur=0, only_masked=True, padding=5))
    x1, y1, x2, y2 = prepared.crop or (0, 0, 0, 0)
    assert (x2 - x1) == 2 * (y2 - y1) and x1 <= 145 and x2 >= 175 and y1 <= 5 and y2 >= 35
    assert prepared.init.size == prepared.mask.size == (64, 32)
    painted = masking.finish(Image.new("RGB", (64, 32), (255, 0, 0)), prepared)
    out, src = np.asarray(painted), np.asarray(source)
    assert painted.size == (200, 100)
    assert (out[12:28, 152:168] == [255, 0, 0]).all()
    outside = np.ones((100, 200), bool)
    outside[8:32, 148:172] = False
    assert np.array_equal(out[outside], src[outside])
    # An empty mask paints nothing: the whole picture at the task's size, kept.
    empty = masking.prepare(source, Image.new("L", (200, 100)), (64, 32),
                            MaskOptions(only_masked=True))
    assert empty.crop is None and empty.source.size == (64, 32)


def test_fill_takes_the_colours_around_and_keeps_the_rest() -> None:
    image = Image.new("RGB", (64, 64), (0, 200, 0))
    ImageDraw.Draw(image).rectangle((20, 20, 43, 43), fill=(255, 0, 255))
    mask = box_mask((64, 64), (20, 20, 43, 43))
    filled = np.asarray(masking.fill(image, mask), dtype=int)
    assert np.abs(filled[32, 32] - [0, 200, 0]).max() <= 2  # magenta gone, green around
    assert (filled[:18] == [0, 200, 0]).all()


def test_alpha_masks_and_inversion() -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 255, 255, 0))
    ImageDraw.Draw(rgba).rectangle((0, 0, 3, 7), fill=(0, 0, 0, 255))
    assert np.asarray(masking.binary_mask(rgba))[:, :4].min() == 255
    assert np.asarray(masking.binary_mask(rgba))[:, 4:].max() == 0
    prepared = masking.prepare(Image.new("RGB", (8, 8)), rgba, (8, 8),
                               MaskOptions(blur=0, invert=True))
    assert np.asarray(prepared.mask)[:, 4:].min() == 255
