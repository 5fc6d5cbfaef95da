"""The image-scoring helpers read procedurally drawn images correctly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tools.demo_models.diffusion import scoring, shapes


@pytest.mark.parametrize("combo", shapes.all_combos()[::7], ids=lambda c: c.caption)
def test_read_image_recovers_the_drawn_combo(combo: shapes.Combo) -> None:
    rng = np.random.default_rng(42)
    for _ in range(3):
        image, mask = shapes.draw(combo.colour, combo.shape, combo.background, rng)
        reading = scoring.read_image(image)
        assert reading.colour == combo.colour
        assert reading.background == combo.background
        assert reading.shape == combo.shape
        assert reading.shape_by_fill == combo.shape
        assert scoring.iou(reading.mask, mask) > 0.8


def test_scores_extra_colours_and_upscaled_images() -> None:
    rng = np.random.default_rng(0)
    image, _ = shapes.draw("purple", "square", "white", rng)
    big = image.resize((256, 256), Image.Resampling.BICUBIC)
    reading = scoring.read_image(big)
    assert (reading.colour, reading.shape, reading.background) == ("purple", "square", "white")


def test_fill_ratio_separates_the_shapes() -> None:
    rng = np.random.default_rng(3)
    fills = {}
    for shape in shapes.SHAPES:
        placement = shapes.Placement(16, 16, 20)
        _, mask = shapes.draw("red", shape, "blue", rng, placement=placement)
        fills[shape] = scoring.fill_ratio(mask)
    assert fills["square"] > 0.95
    assert 0.7 < fills["circle"] < 0.85
    assert 0.4 < fills["triangle"] < 0.65


def test_fill_reading_is_independent_of_the_template_reading() -> None:
    """The fill reading uses only area over box, the template reading where the pixels
    lie: an upside-down triangle still fills half its box (a triangle by fill), but
    overlaps the upright triangle template least (not a triangle by IoU).  Two readings
    that can disagree, which is why the eval reports both."""
    _, mask = shapes.draw("red", "triangle", "blue", np.random.default_rng(0),
                          placement=shapes.Placement(16, 16, 24))
    flipped = mask[::-1]
    assert scoring.shape_by_fill(flipped) == "triangle"
    assert scoring.classify_shape(flipped) != "triangle"
    assert scoring.shape_by_fill(np.zeros((8, 8), bool)) is None


def test_star_is_told_from_base_shapes_when_a_candidate() -> None:
    rng = np.random.default_rng(5)
    _, mask = shapes.draw("orange", "star", "black", rng, placement=shapes.Placement(16, 16, 26))
    assert scoring.classify_shape(mask, (*shapes.SHAPES, "star")) == "star"


def test_nearest_colour_and_empty_images() -> None:
    assert scoring.nearest_colour((250, 10, 10)) == "red"
    assert scoring.nearest_colour((20, 20, 20)) == "black"
    plain = Image.new("RGB", (32, 32), shapes.COLOURS["green"])
    reading = scoring.read_image(plain)
    assert reading.background == "green"
    assert reading.shape is None and reading.colour is None
    assert not reading.mask.any()


def test_enclosed_region_of_canny_edges_matches_the_shape() -> None:
    rng = np.random.default_rng(7)
    ious = []
    for combo in shapes.held_out_combos():
        image, mask = shapes.draw(combo.colour, combo.shape, combo.background, rng)
        ious.append(scoring.iou(scoring.enclosed_region(shapes.canny(image)), mask))
    assert min(ious) > 0.6
    assert np.mean(ious) > 0.8
    # No edges: nothing is enclosed.
    blank = Image.new("RGB", (32, 32), "black")
    assert not scoring.enclosed_region(blank).any()
