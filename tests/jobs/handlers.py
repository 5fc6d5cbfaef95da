"""Job kinds for tests of worker processes: ``slow_count`` counts slowly, so a test can kill
a worker mid-task; ``cpu_budget`` reports the worker's CPU budget.

Imported by worker subprocesses with ``ronghe worker --import tests.jobs.handlers``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ronghe.engines.cpu import budget
from ronghe.jobs import JobContext, register


def slow_count(ctx: JobContext) -> dict[str, Any]:
    n = int(ctx.params["n"])
    for i in range(n):
        ctx.progress((i + 1) / n, {"step": i + 1, "pid": os.getpid()})
        time.sleep(float(ctx.params.get("sleep", 0.05)))
    return {"total": n, "pid": os.getpid(), "attempt": ctx.task.attempts}


def cpu_budget(ctx: JobContext) -> dict[str, Any]:
    """The process's budget and the threads torch would get now, as the image task's lease
    gives them (ronghe.engines.diffusion.generate)."""
    with budget.lease("torch") as threads:
        return {"total": budget.total, "torch_threads": threads, "pid": os.getpid()}


register("slow_count", slow_count)
register("cpu_budget", cpu_budget)
