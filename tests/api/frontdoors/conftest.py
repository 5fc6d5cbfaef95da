"""One live Ronghe for the image front doors (OpenAI Images, A1111): the real app, served
by uvicorn on a loopback port, with the demo model under two names and live previews every
0.2 s (the shortest allowed), so streamed partial images have something to show."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from ronghe.app import create_app
from tests.chat_support import LiveServer
from tests.conftest import Account, DemoModel, make_account, make_settings

SECOND = "second-demo"


@dataclass
class Live:
    url: str
    app: FastAPI
    alice: Account
    bob: Account

    def basic(self, user: str, password: str) -> dict[str, str]:
        raw = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    def tasks(self, account: Account) -> list[dict[str, Any]]:
        """The account's history, newest first, as task_list answers it."""
        answer = httpx.post(f"{self.url}/api/v1b/task_list",
                            json={"token": account.token, "per_page": 50}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["info"]["items"]


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("frontdoors") / "data"
    settings = make_settings(data, image_models=[demo_model.spec(),
                                                 demo_model.spec(SECOND, aliases=[])],
                             chat_models=[], cpu_threads=1, image_preview_seconds=0.2)
    app = create_app(settings)
    alice, bob = make_account(app), make_account(app, "bob@example.com")
    with LiveServer(app) as server:
        yield Live(server.url, app, alice, bob)


def picture(colour: tuple[int, int, int] = (220, 30, 30), size: int = 64) -> Image.Image:
    """A red disc on blue, the demo model's kind of picture."""
    yy, xx = np.mgrid[:size, :size]
    disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[...] = (30, 60, 200)
    pixels[disc] = colour
    return Image.fromarray(pixels)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def b64png(image: Image.Image) -> str:
    return base64.b64encode(png(image)).decode("ascii")


def decoded(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image
