"""Samplers and weighted prompts through the Python client (issue 29)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ronghe.client import Client, ValidationError
from tests.conftest import PASSWORD
from tests.server_support import Server

SMALL = {"output_size": "64x64", "ddim_steps": 2, "n_images": 1}


@pytest.fixture(scope="module")
def alice(server: Server) -> Iterator[Client]:
    client = Client(server.url, email="alice@example.com", password=PASSWORD)
    yield client
    client.close()


def test_sampler_scheduler_and_weighted_prompt(alice: Client) -> None:
    images = alice.generate("a (red:1.3) circle BREAK on blue", sampler_name="DPM++ 2M",
                            scheduler="Exponential", select_seed=4, **SMALL)
    task = images[0].task
    assert (task.sampler_name, task.scheduler) == ("DPM++ 2M", "Exponential")
    assert task.prompt == "a (red:1.3) circle BREAK on blue"
    assert images[0].parameters["sampler_name"] == "DPM++ 2M"
    own = alice.generate("a red circle", select_seed=4, **SMALL)[0].task
    assert (own.sampler_name, own.scheduler) == ("DDIM", "Automatic")
    with pytest.raises(ValidationError) as caught:
        alice.submit("a red circle", sampler_name="DDIM", scheduler="Karras", **SMALL)
    assert caught.value.status == 400 and caught.value.msg.startswith("scheduler: DDIM takes")
