from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.settings import Settings
from tests.conftest import Account, DemoModel, make_settings
from tests.image_support import png_bytes

SUBMIT = "/api/v1b/task_submit"


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    # One torch thread: the shared test machine runs several times faster that way.
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1)


def upload(client: TestClient, account: Account, image: Image.Image) -> str:
    """An image stored for the account, as a URL the client got back from an upload."""
    services = client.app.state.services  # type: ignore[attr-defined]
    info = services.files.save(account.user_id, png_bytes(image), "image/png", "upload",
                               image.width, image.height)
    return services.files.url(info, "http://testserver/")


def submit(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"token": account.token, "prompt": "a red circle on a blue background",
            "n_images": 1, "output_size": "64x64", "ddim_steps": 4, **fields}
    response = client.post(SUBMIT, json=body)
    assert response.status_code == 200, response.text
    return response.json()
