from collections.abc import Iterator

import pytest

from tests.conftest import DemoModel
from tests.server_support import Server, shared_server


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[Server]:
    """One real server for the client tests (alice and bob, password PASSWORD)."""
    with shared_server(tmp_path_factory, demo_model) as running:
        yield running
