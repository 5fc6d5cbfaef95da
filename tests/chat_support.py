"""Helpers for chat tests: settings for a shared CPU, a live server, the model's EOG tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import llama_cpp
import uvicorn
from fastapi import FastAPI

from ronghe.app import create_app
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.llama_cpp import LlamaCppEngine
from ronghe.settings import Settings
from tests.conftest import make_account, make_settings

MODEL = "smollm2"


def chat_settings(data_dir: Path, **overrides: Any) -> Settings:
    # One thread: the test machine is shared, and llama.cpp threads that must wait for a busy
    # core make decoding several times slower, not faster.
    base: dict[str, Any] = {"cpu_threads": 1}
    base.update(overrides)
    return make_settings(data_dir, **base)


@cache
def eog_tokens() -> tuple[int, ...]:
    """The bundled model's end-of-generation tokens; a -100 bias on them forbids stopping."""
    llm = llama_cpp.Llama(str(resolve_model_path("bundled:smollm2")), vocab_only=True,
                          verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    found = tuple(t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))
    llm.close()
    return found


def never_stop() -> dict[str, int]:
    """An OpenAI ``logit_bias`` that keeps the model generating until its token limit."""
    return {str(t): -100 for t in eog_tokens()}


def chat_engine(app: FastAPI, name: str = MODEL) -> LlamaCppEngine:
    engine = app.state.services.chat.get(name)
    assert isinstance(engine, LlamaCppEngine)
    return engine


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


class LiveServer:
    """The app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        if not wait_for(lambda: self.server.started, timeout=30):
            raise RuntimeError("uvicorn did not start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class ChatServer:
    """A live Ronghe with one account: its API key and its get_token token."""

    url: str
    key: str
    token: str
    app: FastAPI

    @property
    def engine(self) -> LlamaCppEngine:
        return chat_engine(self.app)

    def idle(self) -> bool:
        stats = self.engine.stats()
        return stats.running == 0 and stats.waiting == 0


@contextmanager
def serve_chat(data_dir: Path, **overrides: Any) -> Iterator[ChatServer]:
    app = create_app(chat_settings(data_dir, **overrides))
    account = make_account(app)
    with LiveServer(app) as server:
        yield ChatServer(server.url, account.api_key, account.token, app)
