"""Safe decoding of uploaded images: formats, limits, bombs, orientation, metadata."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from ronghe.uploads.decode import ImageRejected, decode_upload
from tests.training_support import encode

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1_000_000}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def claimed_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb
    only needs the claim: decoding is what would allocate the memory)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


def half_red(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    return image


@pytest.mark.parametrize(("fmt", "ctype"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                            ("WEBP", "image/webp")])
def test_allowed_formats_are_reencoded_in_kind(fmt: str, ctype: str) -> None:
    decoded = decode_upload(encode(half_red(40, 30), fmt), **LIMITS)
    assert decoded.content_type == ctype and (decoded.width, decoded.height) == (40, 30)
    with Image.open(io.BytesIO(decoded.data)) as image:
        assert image.format == fmt
        left, right = image.convert("RGB").getpixel((5, 15)), image.getpixel((35, 15))
    assert left[0] > 200 and right[2] > 200  # type: ignore[index]


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_refused(fmt: str) -> None:
    with pytest.raises(ImageRejected, match="JPEG, PNG or WebP"):
        decode_upload(encode(half_red(8, 8), fmt), **LIMITS)


def test_not_an_image_truncated_and_empty() -> None:
    with pytest.raises(ImageRejected, match="not a JPEG, PNG or WebP image"):
        decode_upload(b"hello, I am text", **LIMITS)
    data = encode(half_red(64, 64), "PNG")
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        decode_upload(data[: len(data) // 2], **LIMITS)
    with pytest.raises(ImageRejected, match="empty"):
        decode_upload(b"", **LIMITS)


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = claimed_png(100_000, 100_000)  # ten gigapixels in a ~100-byte file
    assert len(bomb) < 200
    with pytest.raises(ImageRejected) as info:
        decode_upload(bomb, **LIMITS)
    assert info.value.too_large and "upload_max_pixels" in info.value.reason


def test_real_highly_compressed_image_over_the_pixel_limit() -> None:
    # 2000 x 2000 of one colour: a ~10 kB PNG that decodes to 12 MB.
    data = encode(Image.new("RGB", (2000, 2000), (9, 9, 9)), "PNG")
    assert len(data) < 50_000
    with pytest.raises(ImageRejected, match="2000x2000 = 4000000 pixels"):
        decode_upload(data, **LIMITS)


def test_byte_limit() -> None:
    data = encode(half_red(64, 64), "PNG")
    with pytest.raises(ImageRejected, match="upload_max_bytes") as info:
        decode_upload(data, max_bytes=len(data) - 1, max_pixels=10**6)
    assert info.value.too_large


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    exif[0x010F] = "SecretCam"  # make; stands in for GPS and other private tags
    data = encode(half_red(40, 20), "JPEG", exif=exif, quality=95)
    decoded = decode_upload(data, **LIMITS)
    assert (decoded.width, decoded.height) == (20, 40)
    with Image.open(io.BytesIO(decoded.data)) as image:
        rgb = image.convert("RGB")
        # The left (red) half ends up on top once turned clockwise.
        assert rgb.getpixel((10, 5))[0] > 200 and rgb.getpixel((10, 35))[2] > 200  # type: ignore[index]
        assert not image.getexif()
    assert b"SecretCam" not in decoded.data


def test_animated_images_are_refused() -> None:
    frames = [half_red(16, 16), Image.new("RGB", (16, 16), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageRejected, match="animated"):
        decode_upload(out.getvalue(), **LIMITS)


def test_palette_transparency_becomes_alpha() -> None:
    image = Image.new("P", (10, 10), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (5, 0, 10, 10))
    decoded = decode_upload(encode(image, "PNG", transparency=0), **LIMITS)
    with Image.open(io.BytesIO(decoded.data)) as stored:
        assert stored.mode == "RGBA"
        assert stored.getpixel((0, 0))[3] == 0  # type: ignore[index]
        assert stored.getpixel((9, 9)) == (0, 0, 255, 255)
