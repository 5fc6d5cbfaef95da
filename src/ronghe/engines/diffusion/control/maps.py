"""The control maps that need no weights: OpenCV/numpy only, so they run on every server.

Each follows what sd-webui-controlnet's preprocessor of the same name does, adapted where
noted.  Every map is made at the render size (the source is resized first), so a map's
pixels line up with the pixels the ControlNet works on.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

CANNY_LOW, CANNY_HIGH = 100, 200
DOWN_SAMPLE_MIN, DOWN_SAMPLE_MAX = 1, 8
# tile_colorfix: the low-frequency band (box blur of radius side / 8) comes from the
# control image.  sd-webui/Forge blur the latent with radius 8 ("variation" 8) on a 64x64
# latent, i.e. an eighth of the side; here the same share of the side in pixels.
COLORFIX_SHARE = 8
# tile_colorfix_sharp: unsharp-mask amount applied after the colour fix.
SHARPEN_AMOUNT = 0.5


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _image(pixels: np.ndarray) -> Image.Image:
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return Image.fromarray(pixels, "RGB")


def canny_map(image: Image.Image, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> Image.Image:
    """White edges on black, RGB.  Edges are found per colour channel and combined, because
    some colour pairs (red on green) are nearly the same grey and a grey-only canny would
    lose their outline."""
    pixels = _rgb(image)
    edges = np.max([cv2.Canny(np.ascontiguousarray(pixels[..., c]), low, high)
                    for c in range(3)], axis=0)
    return _image(edges)


def invert_map(image: Image.Image) -> Image.Image:
    """sd-webui's ``invert (from white bg & black line)``: a black-on-white drawing becomes
    the white-on-black lines canny and lineart ControlNets read."""
    return _image(255 - _rgb(image).astype(np.int16))


def lineart_standard_map(image: Image.Image, sigma: float = 6.0,
                         threshold: float = 8.0) -> Image.Image:
    """sd-webui's ``lineart_standard (from white bg & black line)``: how much darker each
    pixel is than its blurred surroundings (lines are darker than what is around them),
    normalised by the median line strength, as white lines on black."""
    x = _rgb(image).astype(np.float32)
    blurred = cv2.GaussianBlur(x, (0, 0), sigma)
    intensity = np.min(blurred - x, axis=2).clip(0, 255)
    strong = intensity[intensity > threshold]
    intensity /= max(16.0, float(np.median(strong)) if strong.size else 0.0)
    return _image(intensity * 127)


def brightness_map(image: Image.Image) -> Image.Image:
    """The luminance (ITU-R 601 luma), grey in all three channels: what brightness
    ControlNets (ioclab's control_v1p_sd15_brightness, QR-code monsters) are trained on."""
    return image.convert("RGB").convert("L").convert("RGB")


def tile_resample_map(image: Image.Image, rate: int = 1) -> Image.Image:
    """sd-webui's ``tile_resample``: the image shrunk by ``down_sample_rate`` (area average),
    so the tile ControlNet gets a low-resolution version to add detail to.  Brought back to
    the input's size (bicubic) here, as the pipeline would do with a small map anyway."""
    if not DOWN_SAMPLE_MIN <= rate <= DOWN_SAMPLE_MAX:
        raise ValueError(f"down_sample_rate must be {DOWN_SAMPLE_MIN}-{DOWN_SAMPLE_MAX}")
    rgb = image.convert("RGB")
    if rate == 1:
        return rgb
    width, height = rgb.size
    small = cv2.resize(_rgb(rgb), (max(1, round(width / rate)), max(1, round(height / rate))),
                       interpolation=cv2.INTER_AREA)
    return Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BICUBIC)


def _box_blur(pixels: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.blur(pixels, (size, size), borderType=cv2.BORDER_REPLICATE)


def colorfix(output: Image.Image, reference: Image.Image, sharpen: bool = False) -> Image.Image:
    """``tile_colorfix``: keep the output's detail (its high frequencies) and take the colours
    (the low frequencies) from the control image, so a tile upscale cannot drift in colour.
    sd-webui/Forge do this to the predicted clean latent at every step; diffusers has no
    hook there, so Ronghe does it once, to the finished image, in pixel space.
    ``tile_colorfix_sharp`` then adds an unsharp mask, as Forge's sharpness makes the
    unconditional pass blurrier so guidance pushes detail up."""
    out = _rgb(output).astype(np.float32)
    ref = _rgb(reference.resize(output.size, Image.Resampling.BICUBIC)).astype(np.float32)
    radius = max(1, min(output.size) // COLORFIX_SHARE)
    fixed = out - _box_blur(out, radius) + _box_blur(ref, radius)
    if sharpen:
        fixed = fixed + SHARPEN_AMOUNT * (fixed - cv2.GaussianBlur(fixed, (0, 0), 1.0))
    return _image(np.round(fixed))
