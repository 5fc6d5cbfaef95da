"""A job kind for dispatch tests: counts slowly, so a test can kill a worker mid-task.

Imported by worker subprocesses with ``ronghe worker --import tests.jobs.handlers``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ronghe.jobs import JobContext, register


def slow_count(ctx: JobContext) -> dict[str, Any]:
    n = int(ctx.params["n"])
    for i in range(n):
        ctx.progress((i + 1) / n, {"step": i + 1, "pid": os.getpid()})
        time.sleep(float(ctx.params.get("sleep", 0.05)))
    return {"total": n, "pid": os.getpid(), "attempt": ctx.task.attempts}


register("slow_count", slow_count)
