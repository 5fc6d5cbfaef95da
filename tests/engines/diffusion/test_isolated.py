"""Generation in the child process: same results, stop between steps, crashes contained."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ronghe.engines.diffusion.engine import build_engine
from ronghe.engines.diffusion.generate import GenerationRequest, ImageEngine
from ronghe.engines.diffusion.isolated import IsolatedEngine, WorkerDied
from ronghe.errors import NotReady
from tests.conftest import DemoModel
from tests.engines.diffusion.conftest import image_settings
from tests.image_support import PROMPT, on


@pytest.fixture(scope="module")
def isolated(demo_model: DemoModel, tmp_path_factory: pytest.TempPathFactory,
             one_thread: None) -> Iterator[IsolatedEngine]:
    bad = tmp_path_factory.mktemp("bad") / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    settings = image_settings(tmp_path_factory.mktemp("data"), demo_model.spec(),
                              {"name": "broken", "path": str(bad), "family": "sd15"})
    engine = build_engine(settings)
    assert isinstance(engine, IsolatedEngine)
    yield engine
    engine.close()


def request(steps: int = 6, seeds: tuple[int, ...] = (4,)) -> GenerationRequest:
    return GenerationRequest(PROMPT, list(seeds), 64, 64, steps, 5.0)


def test_same_images_as_in_process(isolated: IsolatedEngine, engine: ImageEngine) -> None:
    entry = isolated.registry.get("ronghe-demo")
    steps: list[int] = []
    child = isolated.generate(on(entry, request(seeds=(4, 5))),
                              lambda done, total: steps.append(done))
    local = engine.generate(on(engine.registry.get("ronghe-demo"), request(seeds=(4, 5))))
    assert steps[-1] == 12 and steps == sorted(steps)  # reported at most every 0.1 s
    for a, b in zip(child.images, local.images, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert child.render_size == (32, 32) and os.getpid() != isolated.pid


def test_a_stop_ends_at_the_next_step_and_the_child_serves_on(
        isolated: IsolatedEngine) -> None:
    entry = isolated.registry.get("ronghe-demo")
    seen: list[int] = []

    class Cancel(Exception):
        pass

    def cancel_at_once(done: int, total: int) -> None:
        seen.append(done)
        raise Cancel

    full = time.perf_counter()
    isolated.generate(on(entry, request(steps=60)))
    full = time.perf_counter() - full
    stopped = time.perf_counter()
    with pytest.raises(Cancel):
        isolated.generate(on(entry, request(steps=60)), cancel_at_once)
    stopped = time.perf_counter() - stopped
    assert seen == [1] and stopped < full / 2, (stopped, full)
    pid = isolated.pid
    assert len(isolated.generate(on(entry, request())).images) == 1 and isolated.pid == pid


def test_a_load_failure_reaches_the_parent_and_marks_the_model(
        isolated: IsolatedEngine) -> None:
    entry = isolated.registry.get("broken")
    with pytest.raises(NotReady, match="loading failed"):
        isolated.generate(on(entry, request()))
    with pytest.raises(NotReady, match="loading failed"):
        isolated.registry.check(entry)


def test_a_killed_child_fails_the_generation_and_is_replaced(
        isolated: IsolatedEngine) -> None:
    entry = isolated.registry.get("ronghe-demo")
    isolated.generate(on(entry, request()))
    pid = isolated.pid
    assert pid is not None
    killed = threading.Event()

    def kill_once(done: int, total: int) -> None:
        if not killed.is_set():
            killed.set()
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(WorkerDied, match="restarts with the next task"):
        isolated.generate(on(entry, request(steps=200)), kill_once)
    assert len(isolated.generate(on(entry, request())).images) == 1
    assert isolated.pid not in (None, pid)


def test_thread_mode_is_available(tmp_path: Path, demo_model: DemoModel) -> None:
    engine = build_engine(image_settings(tmp_path, demo_model.spec(),
                                         image_worker_process=False))
    assert isinstance(engine, ImageEngine)
