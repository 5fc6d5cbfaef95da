"""Images written with their parameters in every output format, and read back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ronghe.engines.diffusion.infotext import parse_parameters
from ronghe.engines.diffusion.output import (
    encode_variants,
    read_metadata,
    read_parameters,
    read_user_comment,
)

META = {"prompt": "一只红色的圆 a red circle", "negative_prompt": "blurry", "seed": 42,
        "steps": 20, "scale": 7.0, "width": 960, "height": 640, "model": "ronghe-demo",
        "loras": [{"name": "purple", "weight": 0.8}],
        "controlnets": [{"cn": "canny", "weight": 1.0, "processor": "canny", "start": 0.0,
                         "end": 0.5}], "render_size": "48x32"}


def test_every_jpeg_variant_carries_the_parameters_in_comment_and_exif() -> None:
    image = Image.new("RGB", (960, 640), (200, 30, 30))
    variants = encode_variants(image, META)
    sizes = {name: (w, h) for name, (_, w, h) in variants.items()}
    assert sizes == {"large": (960, 640), "middle": (512, 341), "small": (128, 85)}
    for data, width, height in variants.values():
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.format == "JPEG" and decoded.size == (width, height)
        assert read_metadata(data) == META
        text = read_user_comment(data)
        assert text == read_parameters(data)
        prompt, negative, line = text.split("\n")
        # LoRAs as A1111 users write them, at the end of the prompt.
        assert (prompt, negative) == ("一只红色的圆 a red circle <lora:purple:0.8>",
                                      "Negative prompt: blurry")
        assert line.startswith("Steps: 20, CFG scale: 7, Seed: 42, Size: 960x640, "
                               "Model: ronghe-demo, Rendered at: 48x32, ControlNet 0: "
                               '"Module: canny, Model: canny, Weight: 1, Guidance Start: 0, '
                               'Guidance End: 0.5", Version: Ronghe ')


@pytest.mark.parametrize("output_format", ["png", "webp"])
def test_png_and_webp_carry_the_same_text_and_json(output_format: str) -> None:
    image = Image.new("RGB", (96, 64), (20, 200, 30))
    data, _, _ = encode_variants(image, META, output_format)["large"]
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format == output_format.upper() and decoded.size == (96, 64)
        if output_format == "png":
            # A1111's chunk, where its PNG Info tab and Civitai read it.
            assert decoded.info["parameters"].startswith("一只红色的圆")
            assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))
    assert read_metadata(data) == META
    parsed = parse_parameters(read_parameters(data))
    assert (parsed["Seed"], parsed["Size-1"], parsed["Size-2"]) == ("42", "960", "640")
    assert parsed["Negative prompt"] == "blurry"
