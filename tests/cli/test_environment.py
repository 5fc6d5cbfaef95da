"""What importing the CLI does to the process: nothing that changes how engines run."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_the_cli_leaves_openmp_and_torch_alone() -> None:
    # OpenMP reads OMP_WAIT_POLICY once, when torch or llama.cpp loads it: a value set at
    # CLI import would apply to `ronghe serve` too (passive waiting made a 2-thread image
    # 2.5x slower). A fresh interpreter, since this one may already hold either.
    code = ("import os, sys, ronghe.cli; "
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.split() == ["None", "False"]
