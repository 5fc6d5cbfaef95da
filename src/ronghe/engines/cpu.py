"""One process-wide CPU thread budget shared by llama.cpp and torch.

llama.cpp and torch each spin one busy thread per core they are given; when both run at once
with every core each, they oversubscribe the CPU and both slow down far more than twofold.
So every piece of CPU-heavy work holds a *lease* under a name (``"llama:<model>"``,
``"torch"``) while it runs, and the cores are split evenly between the names that hold one:

- one holder alone gets all ``cpu_threads`` cores;
- with ``k`` distinct holders each gets ``max(1, cpu_threads // k)``.

llama.cpp re-reads its share between tokens (``share``), so it shrinks as soon as torch
starts and grows back when torch ends.  torch's thread count is process-global and costly to
change mid-step, so torch reads its share once when its work starts::

    from ronghe.engines.cpu import budget

    with budget.lease("torch") as threads:
        torch.set_num_threads(threads)
        run_pipeline()

Nested leases under the same name count once, so a torch job that calls other torch code
does not halve its own share.  ``configure`` sets the core count from ``settings.cpu_threads``
at startup.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class CpuBudget:
    def __init__(self, total: int) -> None:
        self._total = max(1, total)
        self._holders: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return self._total

    def configure(self, total: int) -> None:
        with self._lock:
            self._total = max(1, total)

    def share(self, name: str) -> int:
        """Threads ``name`` should use now (as if it held a lease, whether or not it does)."""
        with self._lock:
            # lease() deletes names whose count drops to 0, so every key is a holder.
            holders = len(self._holders) + (0 if name in self._holders else 1)
            return max(1, self._total // holders)

    def holders(self) -> list[str]:
        with self._lock:
            return sorted(name for name, count in self._holders.items() if count > 0)

    @contextmanager
    def lease(self, name: str) -> Iterator[int]:
        with self._lock:
            self._holders[name] += 1
        try:
            yield self.share(name)
        finally:
            with self._lock:
                self._holders[name] -= 1
                if self._holders[name] <= 0:
                    del self._holders[name]


budget = CpuBudget(os.cpu_count() or 1)
