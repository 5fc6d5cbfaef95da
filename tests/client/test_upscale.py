"""The client's hires fix and upscale calls against a real server (issue 29)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ronghe.client import AsyncClient, Client, ValidationError
from ronghe.engines.diffusion import upscalers
from tests.api.images.test_upscale import tiny_esrgan
from tests.conftest import PASSWORD
from tests.server_support import Server

SMALL = {"output_size": "64x64", "ddim_steps": 2}


@pytest.fixture(scope="module")
def bob(server: Server) -> Iterator[Client]:
    client = Client(server.url, email="bob@example.com", password=PASSWORD)
    yield client
    client.close()


def test_hires_and_upscale(server: Server, bob: Client, tmp_path: Path) -> None:
    tiny_esrgan(upscalers.folder(server.data_dir / "models") / "client-esrgan-2x.safetensors",
                2)
    [image] = bob.generate("a red circle", enable_hr=True, hr_scale=1.5,
                           hr_upscaler="Nearest", n_images=1, **SMALL)
    assert (image.width, image.height) == (96, 96)
    assert image.parameters["hr_scale"] == 1.5
    assert "client-esrgan-2x" in [u["name"] for u in bob.upscalers()]
    big = bob.upscale(image.url, upscaler="client-esrgan-2x")
    assert (big.width, big.height) == (192, 192)
    with Image.open(io.BytesIO(big.data)) as decoded:
        assert decoded.size == (192, 192)
    local = tmp_path / "small.png"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(local)
    assert bob.upscale(local, scale=3).width == 90
    with pytest.raises(ValidationError, match=r"scale: must be a number 1-4"):
        bob.upscale(local, scale=9)
    with pytest.raises(ValidationError, match=r"upscaler: unknown upscaler 'none'"):
        bob.upscale(image.url, upscaler="none")

    async def from_asyncio() -> tuple[int | None, int | None]:
        async with AsyncClient(server.url, email="bob@example.com",
                               password=PASSWORD) as client:
            done = await client.upscale(image.url, scale=2, upscaler="Lanczos")
            await done.read()
            return done.width, done.height

    assert asyncio.run(from_asyncio()) == (192, 192)
