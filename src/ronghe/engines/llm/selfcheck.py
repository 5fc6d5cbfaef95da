"""`python -m ronghe.engines.llm.selfcheck`: does this llama.cpp build run the bundled model?

llama-cpp-python is compiled on the user's machine, and a miscompiled or CPU-incompatible
build does not raise: it kills the process (SIGSEGV, SIGILL) at the first decode.  This
loads the bundled GGUF and decodes a few tokens in a child process, so install.sh can say
what is wrong instead of the server or the test suite dying later.
"""

from __future__ import annotations

import signal
import subprocess
import sys

_CHILD = """
import llama_cpp
from ronghe.engines.llm.bundled import resolve_model_path
llm = llama_cpp.Llama(str(resolve_model_path("bundled:smollm2")), n_ctx=256, n_batch=64,
                      n_threads=1, verbose=False)
llm.eval(llm.tokenize(b"The capital of France is"))
print(llama_cpp.llama_print_system_info().decode())
"""


def check(timeout: float = 120.0) -> tuple[bool, str]:
    """(ok, detail): detail is llama.cpp's system info, or why it failed."""
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"no answer in {timeout:g} s"
    if done.returncode == 0:
        return True, done.stdout.strip()
    if done.returncode < 0:
        reason = f"the process was killed by {signal.Signals(-done.returncode).name}"
    else:
        reason = f"exit status {done.returncode}"
    return False, f"{reason}\n{done.stderr.strip()[-2000:]}"


def main() -> int:
    ok, detail = check()
    if ok:
        print(f"llama.cpp self-check passed ({detail})", file=sys.stderr)
        return 0
    print(
        "llama.cpp self-check FAILED: decoding with the bundled chat model "
        f"crashed: {detail}\n"
        "Rebuild llama-cpp-python: remove the cached wheel and re-run ./install.sh, which\n"
        "builds llama.cpp without its AMX kernels:\n"
        "  .venv/bin/pip cache remove llama_cpp_python && ./install.sh\n"
        "If that still fails, build it for a generic x86-64 CPU (slower):\n"
        "  CMAKE_ARGS='-DGGML_NATIVE=OFF' ./install.sh\n"
        "(docs/deployment.md, 'The chat engine build').",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
