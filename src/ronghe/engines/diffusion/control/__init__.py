"""ControlNet conditioning images: the client's image turned into what the ControlNet reads.

``control_processor`` choices per ControlNet type are the vendor's later editions' (see
``UNIT_PROCESSORS``).  The weight-free ones are in ``maps``; those that need annotator
weights (lineart models, openpose) are in ``annotators`` and load from a configured folder.
"""

from __future__ import annotations

from PIL import Image

from ronghe.engines.diffusion.control import annotators
from ronghe.engines.diffusion.control.maps import (
    CANNY_HIGH,
    CANNY_LOW,
    DOWN_SAMPLE_MAX,
    DOWN_SAMPLE_MIN,
    brightness_map,
    canny_map,
    colorfix,
    invert_map,
    lineart_standard_map,
    tile_resample_map,
)

__all__ = ["CANNY_HIGH", "CANNY_LOW", "DOWN_SAMPLE_MAX", "DOWN_SAMPLE_MIN", "PROCESSORS",
           "UNIT_PROCESSORS", "WEIGHT_FREE", "allowed_processors", "canny_map", "colorfix",
           "control_image", "default_processor", "finish", "normalise", "unit_type"]

# ControlNet type -> its control_processor choices (the vendor's order).
UNIT_PROCESSORS: dict[str, tuple[str, ...]] = {
    "canny": ("canny", "invert"),
    "lineart": ("lineart_realistic", "lineart_coarse", "lineart_standard", "invert"),
    "lineart_anime": ("lineart_anime", "lineart_anime_denoise"),
    "openpose": ("dw_openpose_full", "openpose", "openpose_face", "openpose_faceonly",
                 "openpose_full", "openpose_hand"),
    "tile": ("tile_colorfix", "tile_colorfix_sharp", "tile_resample"),
    "brightness": ("brightness",),
}
# Used when a unit names no processor: the weight-free choice where the type has one.
DEFAULTS = {"canny": "canny", "lineart": "lineart_standard", "lineart_anime": "lineart_anime",
            "openpose": "openpose", "tile": "tile_resample", "brightness": "brightness"}
# "none": the image already is the control map (any type).
NONE = "none"
WEIGHT_FREE = ("canny", "invert", "lineart_standard", "tile_resample", "tile_colorfix",
               "tile_colorfix_sharp", "brightness", NONE)
PROCESSORS = tuple(dict.fromkeys(
    [p for choices in UNIT_PROCESSORS.values() for p in choices] + [NONE]))
TILE = ("tile_resample", "tile_colorfix", "tile_colorfix_sharp")
COLORFIX = ("tile_colorfix", "tile_colorfix_sharp")
# Spellings other clients send (sd-webui's own names).
ALIASES = {"tile_colorfix+sharp": "tile_colorfix_sharp",
           "invert (from white bg & black line)": "invert"}


def normalise(processor: str) -> str:
    name = processor.strip().lower()
    return ALIASES.get(name, name)


def unit_type(cn: str) -> str | None:
    """The ControlNet type a configured name stands for: the name itself, or the longest
    type it starts with (``tile_sdxl`` is a tile ControlNet); None for other names."""
    name = cn.strip().lower()
    matches = [t for t in UNIT_PROCESSORS if name == t or name.startswith((t + "_", t + "-"))]
    return max(matches, key=len) if matches else None


def allowed_processors(cn: str) -> tuple[str, ...]:
    kind = unit_type(cn)
    return (*UNIT_PROCESSORS[kind], NONE) if kind else PROCESSORS


def default_processor(cn: str) -> str:
    kind = unit_type(cn)
    return DEFAULTS[kind] if kind else NONE


def control_image(source: Image.Image, size: tuple[int, int], processor: str = "canny",
                  low: int = CANNY_LOW, high: int = CANNY_HIGH, rate: int = 1,
                  annotator_path: str = "") -> Image.Image:
    """The control map at the render size.  The source is resized *before* edge detection,
    so edges stay one pixel wide at the resolution the ControlNet works at."""
    resized = source.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    if processor == "canny":
        return canny_map(resized, low, high)
    if processor == "invert":
        return invert_map(resized)
    if processor == "lineart_standard":
        return lineart_standard_map(resized)
    if processor == "brightness":
        return brightness_map(resized)
    if processor in TILE:
        return tile_resample_map(resized, rate)
    if processor == NONE:
        return resized
    if processor in annotators.NEEDS:
        return annotators.run(processor, source, size, annotator_path)
    raise ValueError(f"unknown control processor {processor!r}")


def finish(image: Image.Image, processor: str, control_map: Image.Image) -> Image.Image:
    """What a processor does to the finished image (tile_colorfix's colour fix)."""
    if processor in COLORFIX:
        return colorfix(image, control_map, sharpen=processor == "tile_colorfix_sharp")
    return image
