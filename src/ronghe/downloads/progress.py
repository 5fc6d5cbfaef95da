"""How a pull tells the world where it is: one ``Progress`` per step, to a ``Reporter``.

The CLI's reporters draw rich progress bars or print JSON lines; the server's ``download``
task writes it to the task row (``task_events``, the admin's list).  A reporter may raise
from ``update`` to stop the pull (a cancelled task, a stopping server): the pull checks
nothing else, and the bytes written so far stay for the next try.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Protocol

RESOLVING, DOWNLOADING, VERIFYING, INSTALLING, DONE = (
    "resolving", "downloading", "verifying", "installing", "done")


@dataclass(frozen=True)
class Progress:
    phase: str
    name: str = ""
    # The file being fetched or checked (its path in the repo or its file name).
    file: str = ""
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    # None while unknown (a server that sends no length).
    bytes_total: int | None = None
    # Bytes per second over the last few seconds, and the seconds left at that speed.
    speed: float | None = None
    eta_seconds: float | None = None

    @property
    def fraction(self) -> float:
        if not self.bytes_total:
            return 0.0
        return max(0.0, min(1.0, self.bytes_done / self.bytes_total))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["speed"] = round(self.speed, 1) if self.speed is not None else None
        if self.eta_seconds is not None:
            data["eta_seconds"] = round(self.eta_seconds, 1)
        return data


class Reporter(Protocol):
    def update(self, progress: Progress) -> None:
        """Called often (every chunk); may raise to stop the pull."""

    def note(self, message: str) -> None:
        """Something the user should read (a resumed download, a file already there)."""


class Silent:
    """A reporter that shows nothing (library use, tests)."""

    def update(self, progress: Progress) -> None:
        return None

    def note(self, message: str) -> None:
        return None


class Meter:
    """Speed over a sliding window of a few seconds, so the ETA follows the line's speed
    now rather than its average since the start (a resumed pull starts at its offset)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._points: deque[tuple[float, int]] = deque()

    def add(self, done: int) -> None:
        now = time.monotonic()
        self._points.append((now, done))
        while len(self._points) > 2 and now - self._points[0][0] > self.window:
            self._points.popleft()

    def speed(self) -> float | None:
        if len(self._points) < 2:
            return None
        (t0, b0), (t1, b1) = self._points[0], self._points[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    def eta(self, done: int, total: int | None) -> float | None:
        speed = self.speed()
        if not total or not speed or speed <= 0:
            return None
        return max(0.0, (total - done) / speed)
