"""PNG uploads whose metadata chunks are hostile (issue 26, item 4): a zTXt or iCCP chunk that
inflates to 200 MB, or 70 that inflate to 1 MB each, gets a 400 in the Miaohua envelope on
every endpoint that decodes uploaded images, and nothing is stored.  They used to be 500s:
Pillow raises ValueError ("Decompressed data too large") while opening or loading."""

from __future__ import annotations

import struct
import zlib
from functools import cache
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ronghe.settings import Settings
from tests.conftest import Account, make_settings

ENDPOINTS = ["/api/v1b/upload_img", "/api/v1b/upload_imgs"]
INFLATED = 200 * 1024 * 1024
SIDE = 8


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", chat_models=[])


def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFF_FFFF))


@cache
def zero_run() -> bytes:
    """INFLATED zero bytes, deflated (about 200 kB): fed a megabyte at a time."""
    packer = zlib.compressobj(9)
    block = bytes(1024 * 1024)
    out = [packer.compress(block) for _ in range(INFLATED // len(block))]
    return b"".join(out) + packer.flush()


def png(before_pixels: bytes = b"", after_pixels: bytes = b"") -> bytes:
    """A valid 8x8 grey PNG with extra chunks before and after its pixel data."""
    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes([128]) * SIDE for _ in range(SIDE))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + before_pixels
            + chunk(b"IDAT", zlib.compress(rows)) + after_pixels + chunk(b"IEND", b""))


def ztxt(stream: bytes) -> bytes:
    # keyword, NUL, compression method 0 (deflate), the compressed text
    return chunk(b"zTXt", b"Comment\x00\x00" + stream)


def iccp(stream: bytes) -> bytes:
    return chunk(b"iCCP", b"profile\x00\x00" + stream)


HOSTILE = {
    "ztxt-200mb-before-pixels": lambda: png(before_pixels=ztxt(zero_run())),
    "ztxt-200mb-after-pixels": lambda: png(after_pixels=ztxt(zero_run())),
    "iccp-200mb": lambda: png(before_pixels=iccp(zero_run())),
    # Each chunk under Pillow's 1 MB limit, together past its 64 MB limit for all text.
    "ztxt-70-times-1mb": lambda: png(before_pixels=ztxt(zlib.compress(bytes(1_000_000), 9)) * 70),
}


def _stored(client: TestClient, account: Account) -> int:
    services = client.app.state.services  # type: ignore[attr-defined]
    return services.files.list(account.user_id, kind="upload")[1]


def test_the_plain_png_is_accepted(client: TestClient, account: Account) -> None:
    """The control: the same file without the hostile chunk uploads fine."""
    response = client.post(ENDPOINTS[0], data={"token": account.token},
                           files=[("init_img", ("ok.png", png(), "image/png"))])
    assert response.status_code == 200, response.text
    assert _stored(client, account) == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_metadata_chunk_is_a_400_naming_the_file(client: TestClient, account: Account,
                                                           endpoint: str, case: str) -> None:
    data = HOSTILE[case]()
    assert len(data) < 1024 * 1024  # small on the wire; only inflating it would be huge
    response = client.post(endpoint, data={"token": account.token},
                           files=[("init_img", ("bomb.png", data, "image/png"))])
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and body["info"] is None
    assert "init_img[0]" in body["msg"] and "no image was stored" in body["msg"]
    assert _stored(client, account) == 0
