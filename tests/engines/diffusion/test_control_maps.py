"""The weight-free control processors: each makes the map its sd-webui namesake makes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ronghe.engines.diffusion import control
from ronghe.engines.diffusion.control import annotators, colorfix, control_image
from tests.image_support import drawn
from tools.demo_models.diffusion import scoring


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def line_drawing(size: int = 64) -> Image.Image:
    """Black lines on white, as a sketch is drawn."""
    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    pen.rectangle((16, 16, 47, 47), outline="black", width=2)
    pen.line((0, 60, 63, 60), fill="black", width=1)
    return image


def test_invert_turns_black_lines_on_white_into_white_on_black() -> None:
    source = line_drawing()
    inverted = control_image(source, (64, 64), "invert")
    assert (pixels(inverted) == 255 - pixels(source)).all()
    assert pixels(inverted)[17, 30].tolist() == [255, 255, 255]  # on the rectangle's edge
    assert pixels(inverted)[32, 32].tolist() == [0, 0, 0]  # inside it: white paper


def test_lineart_standard_finds_dark_lines_and_nothing_on_flat_paper() -> None:
    lines = pixels(control_image(line_drawing(), (64, 64), "lineart_standard"))
    assert (lines[..., 0] == lines[..., 1]).all() and (lines[..., 1] == lines[..., 2]).all()
    drawn_mask = pixels(line_drawing())[..., 0] < 128
    assert lines[drawn_mask, 0].mean() > 100  # the lines come out bright
    far = np.ones_like(drawn_mask)
    far[12:52, 12:52] = False
    far[56:, :] = False
    assert lines[far, 0].mean() < 10  # bare paper stays black
    flat = control_image(Image.new("RGB", (32, 32), (90, 120, 200)), (32, 32),
                         "lineart_standard")
    assert not pixels(flat).any()


def test_brightness_is_the_luma_in_every_channel() -> None:
    source = drawn("yellow", "circle", "blue", size=96)
    grey = control_image(source, (32, 32), "brightness")
    values = pixels(grey)
    assert grey.size == (32, 32)
    assert (values[..., 0] == values[..., 2]).all()
    expected = np.asarray(source.resize((32, 32), Image.Resampling.BICUBIC).convert("L"))
    assert (values[..., 0] == expected).all()
    assert values[16, 16, 0] > values[1, 1, 0] + 100  # yellow is much brighter than blue


def test_tile_resample_keeps_the_layout_at_a_lower_resolution() -> None:
    source = drawn("red", "square", "green", size=32, seed=5)
    assert (pixels(control_image(source, (32, 32), "tile_resample", rate=1))
            == pixels(source)).all()
    blurred = control_image(source, (32, 32), "tile_resample", rate=4)
    assert blurred.size == (32, 32)
    # Only an 8x8 image's worth of detail is left: shrinking to 8x8 and back changes little,
    # while the original loses much more that way.
    def roundtrip(im: Image.Image) -> float:
        back = im.resize((8, 8), Image.Resampling.BOX).resize((32, 32), Image.Resampling.BICUBIC)
        return float(np.abs(pixels(back) - pixels(im)).mean())

    assert roundtrip(blurred) < roundtrip(source) / 2
    # ... and it still shows where the square is, in its colours.
    truth = scoring.foreground_mask(source)
    assert scoring.iou(scoring.foreground_mask(blurred), truth) > 0.7
    assert scoring.read_image(blurred).colour == "red"
    for processor in ("tile_colorfix", "tile_colorfix_sharp"):
        same = control_image(source, (32, 32), processor, rate=4)
        assert (pixels(same) == pixels(blurred)).all()
    with pytest.raises(ValueError, match="down_sample_rate must be 1-8"):
        control_image(source, (32, 32), "tile_resample", rate=9)


def test_colorfix_takes_the_colours_from_the_control_and_keeps_the_detail() -> None:
    reference = drawn("white", "circle", "blue", size=64, seed=2)
    tinted = Image.fromarray(np.clip(pixels(reference) + np.array([-60, 40, -80]), 0, 255)
                             .astype(np.uint8))
    fixed = colorfix(tinted, reference)
    # Same detail, other colours: the fix brings back the reference (up to clipping).
    assert np.abs(pixels(fixed) - pixels(reference)).mean() < 8
    assert np.abs(pixels(tinted) - pixels(reference)).mean() > 40
    sharp = colorfix(tinted, reference, sharpen=True)
    def detail(im: Image.Image) -> float:
        grey = np.asarray(im.convert("L"), dtype=np.float32)
        return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())

    assert detail(sharp) > detail(fixed) * 1.1
    # Applied by finish() for the colorfix processors only.
    assert control.finish(tinted, "tile_resample", reference) is tinted
    assert (pixels(control.finish(tinted, "tile_colorfix", reference)) == pixels(fixed)).all()


def test_processor_choices_follow_the_controlnet_type() -> None:
    assert control.allowed_processors("canny") == ("canny", "invert", "none")
    assert control.allowed_processors("tile") == (
        "tile_colorfix", "tile_colorfix_sharp", "tile_resample", "none")
    assert control.allowed_processors("brightness") == ("brightness", "none")
    assert "openpose_hand" in control.allowed_processors("openpose")
    assert control.unit_type("lineart_anime_v2") == "lineart_anime"
    assert control.unit_type("tile-sdxl") == "tile"
    assert control.unit_type("depth") is None
    assert control.allowed_processors("depth") == control.PROCESSORS
    assert [control.default_processor(cn) for cn in ("canny", "lineart", "tile", "brightness",
                                                     "depth")] == \
        ["canny", "lineart_standard", "tile_resample", "brightness", "none"]
    assert control.normalise(" Tile_ColorFix+Sharp ") == "tile_colorfix_sharp"
    assert set(control.WEIGHT_FREE) | set(annotators.NEEDS) == set(control.PROCESSORS)


def test_weight_needing_processors_say_what_to_configure(tmp_path) -> None:
    message = annotators.missing("openpose", "")
    assert message is not None and "controlnet_annotators_path" in message
    (tmp_path / "body_pose_model.pth").write_bytes(b"x")
    message = annotators.missing("openpose_full", str(tmp_path))
    assert message is not None
    assert "hand_pose_model.pth" in message and "body_pose_model.pth" not in message
    with pytest.raises(ValueError, match=r"lineart_realistic.*controlnet_annotators_path"):
        control_image(line_drawing(), (32, 32), "lineart_realistic")
