from __future__ import annotations

import io

from PIL import Image

from ronghe.engines.diffusion.output import (
    encode_variants,
    read_metadata,
    read_user_comment,
)

META = {"prompt": "一只红色的圆 a red circle", "negative_prompt": "blurry", "seed": 42,
        "steps": 20, "scale": 7.0, "width": 960, "height": 640, "model": "ronghe-demo",
        "loras": [{"name": "purple", "weight": 0.8}],
        "controlnets": [{"cn": "canny", "weight": 1.0}], "render_size": "48x32"}


def test_every_variant_carries_the_parameters_in_comment_and_exif() -> None:
    image = Image.new("RGB", (960, 640), (200, 30, 30))
    variants = encode_variants(image, META)
    sizes = {name: (w, h) for name, (_, w, h) in variants.items()}
    assert sizes == {"large": (960, 640), "middle": (512, 341), "small": (128, 85)}
    for data, width, height in variants.values():
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.format == "JPEG" and decoded.size == (width, height)
        assert read_metadata(data) == META
        text = read_user_comment(data)
        assert text.startswith("一只红色的圆 a red circle\nNegative prompt: blurry\n")
        for part in ("Steps: 20", "CFG scale: 7.0", "Seed: 42", "Size: 960x640",
                     "Model: ronghe-demo", "Lora: purple 0.8", "ControlNet: canny 1.0",
                     "Rendered at: 48x32"):
            assert part in text
