"""Checkpoints of the project's own resumable builds (demo model, its ControlNets, the demo
captioner): written atomically, and refused on resume when they were made with another
config, because a resumed build must equal a fresh one with the same settings."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


def save(path: Path, state: dict[str, Any]) -> None:
    """Write through a temporary file, so a kill mid-write leaves the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: Path, config: dict[str, Any], free: Iterable[str]) -> dict[str, Any] | None:
    """The saved state, or None when there is none.  ``free`` names the config keys a resume
    may change (step count, threads, checkpoint interval); any other difference is an error."""
    if not path.exists():
        return None
    # The project's own file, holding optimizer state and RNG state (not only tensors).
    state = torch.load(path, weights_only=False)
    skip = set(free)
    saved = {k: v for k, v in state["config"].items() if k not in skip}
    wanted = {k: v for k, v in config.items() if k not in skip}
    if saved != wanted:
        raise RuntimeError(f"{path} was made with a different config; "
                           "use --no-resume or another --work folder")
    return state


@contextmanager
def stop_on_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and Ctrl-C ask the build to checkpoint and stop at the next step (instead of
    killing it mid-write); the previous handlers come back afterwards."""
    def handler(signum: int, frame: object) -> None:
        request_stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
