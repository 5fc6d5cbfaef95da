"""Inpainting with a painted mask, as AUTOMATIC1111's img2img inpaint does it around the model.

The model side (diffusers' inpainting pipeline, or ``inpaint.LatentBlend`` for UNets it
refuses) gets an init image and a mask of one size.  This module makes them from the user's
upload and mask, and puts the result back:

- the mask: white (> 128) repaints, black keeps; a mask with transparency uses its alpha
  instead (opaque repaints), as A1111's ``create_binary_mask``; ``invert`` swaps the two;
  ``blur`` feathers it with a Gaussian of that sigma (A1111's kernel: ``2·⌊2.5·blur+0.5⌋+1``
  pixels), so beyond about ``2.5·blur`` pixels from the painted edge it stays exactly black.
- whole picture: the upload and the mask are resized to the task's size, the model paints,
  and the engine composites the painted image over the upload through the feathered mask.
- only masked (A1111's "inpaint at full resolution"): the mask's bounding box, grown by
  ``padding`` pixels and then to the task's aspect ratio, is cut out and scaled to the
  task's size; the model paints that at full resolution; ``finish`` scales it back and
  pastes it into the upload through the mask.  The delivered image has the upload's size.
- ``fill`` (0): the masked area is first filled with the colours around it, blurred ever
  finer (A1111's ``masking.fill``), so the model starts from the surroundings rather than
  from what was there; ``original`` (1) starts from the upload.  ``latent noise`` (2) and
  ``latent nothing`` (3) start the masked area's latents from noise or zeros; the pixels
  stay the upload's here and ``inpaint.LatentBlend`` does the rest.

Where the feathered mask is 0 the delivered pixels are the upload's, exactly (PNG output
keeps them bit for bit; JPEG and WebP only up to their compression).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# inpainting_fill, by A1111's index.
FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = 0, 1, 2, 3
# The two that act on the starting latents, not on the pixels (inpaint.LatentBlend).
LATENT_FILLS = (LATENT_NOISE, LATENT_NOTHING)


def fills(is_sd: bool) -> tuple[int, ...]:
    """The inpainting_fill values a family takes: the latent ones on Stable Diffusion UNets
    only (the other families' inpainting pipelines start from the image's latents)."""
    return (ORIGINAL, FILL, *LATENT_FILLS) if is_sd else (ORIGINAL, FILL)
# (sigma, repeats) of the fill's passes, coarse to fine (A1111's masking.fill).
FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


@dataclass(frozen=True)
class MaskOptions:
    blur: int = 4
    invert: bool = False
    only_masked: bool = False
    padding: int = 32
    fill: int = ORIGINAL


@dataclass(frozen=True)
class Prepared:
    """What the model inpaints (``init`` and ``mask``, at the task's size), and how
    ``finish`` puts it back into ``source`` (the upload, at the delivered size)."""

    init: Image.Image
    mask: Image.Image
    source: Image.Image
    # The feathered mask at the source's size: the alpha of the painted image there.
    source_mask: Image.Image
    # only masked: (x1, y1, x2, y2) of the source that was painted; None: all of it.
    crop: tuple[int, int, int, int] | None = None


def binary_mask(mask: Image.Image) -> Image.Image:
    """L, 255 repaint / 0 keep: the alpha when the mask has transparency, else its grey."""
    if mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info):
        rgba = mask.convert("RGBA")
        alpha = rgba.getchannel("A")
        # An all-opaque alpha says nothing: the grey decides.
        grey = alpha if alpha.getextrema() != (255, 255) else rgba.convert("L")
    else:
        grey = mask.convert("L")
    return grey.point(lambda v: 255 if v > 128 else 0)


def feather(mask: Image.Image, blur: int) -> Image.Image:
    if blur <= 0:
        return mask
    kernel = 2 * int(2.5 * blur + 0.5) + 1
    pixels = np.asarray(mask, dtype=np.uint8)
    # Horizontal then vertical, as A1111 does (its x and y blurs).
    pixels = cv2.GaussianBlur(pixels, (kernel, 1), blur)
    pixels = cv2.GaussianBlur(pixels, (1, kernel), blur)
    return Image.fromarray(pixels, mode="L")


def crop_region(mask: Image.Image, padding: int) -> tuple[int, int, int, int] | None:
    """The bounding box of the mask's non-zero pixels grown by ``padding`` (inside the
    image); None for an empty mask."""
    box = mask.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return (max(x1 - padding, 0), max(y1 - padding, 0), min(x2 + padding, mask.width),
            min(y2 + padding, mask.height))


def fit_ratio(box: tuple[int, int, int, int], width: int, height: int,
              image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` grown along one axis to the ``width:height`` ratio, centred, shifted back
    inside the image where it would leave it, and cut to the image at worst."""
    x1, y1, x2, y2 = box
    image_w, image_h = image_size
    ratio = width / height
    if (x2 - x1) / (y2 - y1) > ratio:
        y1, y2 = _grow(y1, y2, int((x2 - x1) / ratio - (y2 - y1)), image_h)
    else:
        x1, x2 = _grow(x1, x2, int((y2 - y1) * ratio - (x2 - x1)), image_w)
    return x1, y1, x2, y2


def _grow(lo: int, hi: int, extra: int, limit: int) -> tuple[int, int]:
    lo -= extra // 2
    hi += extra - extra // 2
    if hi > limit:
        lo, hi = lo - (hi - limit), limit
    if lo < 0:
        lo, hi = 0, min(hi - lo, limit)
    return lo, hi


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The masked area painted with the colours of the kept area around it: the kept pixels
    blurred at falling sigmas, each pass laid over the last (alpha = how much kept area
    the blur saw), so coarse colour reaches everywhere and finer passes add detail near
    the edge.  Kept pixels come out as they were."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    kept = 1 - np.asarray(mask.convert("L"), dtype=np.float32)[..., None] / 255
    premultiplied = rgb * kept
    out_rgb = np.zeros_like(rgb)
    out_alpha = np.zeros_like(kept)
    for sigma, repeats in FILL_PASSES:
        if sigma > 0:
            colour = cv2.GaussianBlur(premultiplied, (0, 0), sigma)
            alpha = cv2.GaussianBlur(kept, (0, 0), sigma)[..., None]
        else:
            colour, alpha = premultiplied, kept
        for _ in range(repeats):
            # "over" with premultiplied colours.
            out_rgb = colour + out_rgb * (1 - alpha)
            out_alpha = alpha + out_alpha * (1 - alpha)
    result = np.where(out_alpha > 1e-6, out_rgb / np.maximum(out_alpha, 1e-6), 0)
    return Image.fromarray(np.clip(result * 255 + 0.5, 0, 255).astype(np.uint8), mode="RGB")


def prepare(source: Image.Image, mask: Image.Image, size: tuple[int, int],
            options: MaskOptions) -> Prepared:
    """The model's init image and mask at ``size`` (the task's width and height)."""
    source = source.convert("RGB")
    held = binary_mask(mask)
    if options.invert:
        held = held.point(lambda v: 255 - v)
    if options.only_masked:
        full = feather(_sized(held, source.size), options.blur)
        region = crop_region(full, options.padding)
        # An empty mask paints nothing: it goes on as a whole-picture one (A1111 too).
        if region is not None:
            crop = fit_ratio(region, size[0], size[1], source.size)
            init = source.crop(crop).resize(size, Image.Resampling.LANCZOS)
            model_mask = full.crop(crop).resize(size, Image.Resampling.LANCZOS)
            return Prepared(_filled(init, model_mask, options), model_mask, source, full, crop)
    source = _sized(source, size)
    model_mask = feather(_sized(held, size), options.blur)
    return Prepared(_filled(source, model_mask, options), model_mask, source, model_mask)


def _sized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _filled(init: Image.Image, mask: Image.Image, options: MaskOptions) -> Image.Image:
    return fill(init, mask) if options.fill == FILL else init


def finish(painted: Image.Image, prepared: Prepared) -> Image.Image:
    """The delivered image: the painted one through the feathered mask over the source (for
    only masked, scaled back into its place first)."""
    if prepared.crop is None:
        if painted.size != prepared.source.size:
            painted = painted.resize(prepared.source.size, Image.Resampling.LANCZOS)
        return Image.composite(painted.convert("RGB"), prepared.source, prepared.source_mask)
    x1, y1, x2, y2 = prepared.crop
    canvas = prepared.source.copy()
    canvas.paste(painted.convert("RGB").resize((x2 - x1, y2 - y1), Image.Resampling.LANCZOS),
                 (x1, y1))
    return Image.composite(canvas, prepared.source, prepared.source_mask)
