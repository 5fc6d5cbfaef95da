from __future__ import annotations

import numpy as np
import pytest

from ronghe.engines.diffusion.control import control_image
from tests.image_support import drawn
from tools.demo_models.diffusion import scoring


def test_canny_map_outlines_the_shape_at_the_render_size() -> None:
    source = drawn("red", "square", "green", size=256)
    edges = control_image(source, (32, 32), "canny", 100, 200)
    assert edges.size == (32, 32)
    pixels = np.asarray(edges)
    assert set(np.unique(pixels)) <= {0, 255} and pixels.any()
    region = scoring.enclosed_region(edges)
    truth = scoring.foreground_mask(source.resize((32, 32)))
    assert scoring.iou(region, truth) > 0.7


def test_thresholds_and_passthrough() -> None:
    source = drawn("yellow", "circle", "white", size=64)  # low contrast
    assert np.asarray(control_image(source, (32, 32), "canny", 250, 255)).sum() < \
        np.asarray(control_image(source, (32, 32), "canny", 10, 20)).sum()
    assert control_image(source, (48, 32), "none").size == (48, 32)
    with pytest.raises(ValueError, match="depth"):
        control_image(source, (32, 32), "depth")
