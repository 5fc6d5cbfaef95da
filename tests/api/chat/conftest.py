"""One live Ronghe per test module: the real model behind real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chat_support import ChatServer, serve_chat


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    with serve_chat(tmp_path_factory.mktemp("chat")) as server:
        yield server
