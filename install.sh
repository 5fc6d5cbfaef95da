#!/usr/bin/env bash
# Installs Ronghe and everything it needs into ./.venv (Python 3.11).
# The first run builds llama-cpp-python from source (about 10-15 minutes on 2 cores) into
# ~/.cache/ronghe/wheels, so later installs take a minute or two.  When .venv was installed
# from this very pyproject.toml and install.sh (and still imports), it returns at once:
# the package is installed in editable mode, so source changes need no reinstall.
# FORCE=1 ./install.sh reinstalls anyway.
set -euo pipefail
cd "$(dirname "$0")"

STAMP=.venv/.ronghe-installed
fingerprint() { cat pyproject.toml install.sh | sha256sum | cut -d' ' -f1; }
if [ -z "${FORCE:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] \
    && .venv/bin/python -c 'import ronghe, llama_cpp, torch' 2>/dev/null; then
  echo "Ronghe is installed in .venv (FORCE=1 $0 reinstalls)" >&2
  exit 0
fi

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "install.sh: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip wheel setuptools
# The CPU build of torch first, so no dependency pulls in a CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# llama-cpp-python compiles llama.cpp with -march=native, with two kernels left out:
# - AMX: on CPUs that report it (Sapphire Rapids and later) under some hypervisors, its
#   matmul kernel crashes the process (SIGSEGV in ggml_backend_amx_mul_mat, seen with
#   0.3.36), and for a small model it is no faster than AVX-512;
# - llamafile's sgemm: on AVX2 CPUs (seen on an AMD EPYC) it makes a token's logits depend
#   on how many tokens are evaluated together (logprobs moved by up to 0.1), so a seeded
#   answer changed when it ran beside others or read part of its prompt from a slot's
#   cache.  ggml's own kernels give the same logits alone or batched.
# pip's wheel cache keys a built wheel by the source alone, so a change of flags would keep
# the old build: the wheel is built once per (version, flags) into a cache of our own.
LLAMA_VERSION=0.3.36
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_LLAMAFILE=OFF -DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'}"
LLAMA_KEY="llama-cpp-python-$LLAMA_VERSION-$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-16)"
LLAMA_WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/ronghe/wheels/$LLAMA_KEY"
if ! ls "$LLAMA_WHEELS"/*.whl >/dev/null 2>&1; then
  echo "building llama.cpp ($LLAMA_KEY; about 10-15 minutes on 2 cores)" >&2
  rm -rf "$LLAMA_WHEELS.tmp" && mkdir -p "$LLAMA_WHEELS.tmp"
  .venv/bin/python -m pip wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$LLAMA_WHEELS.tmp" "llama-cpp-python==$LLAMA_VERSION"
  rm -rf "$LLAMA_WHEELS" && mv "$LLAMA_WHEELS.tmp" "$LLAMA_WHEELS"
fi
if [ "$(cat .venv/.ronghe-llama 2>/dev/null)" != "$LLAMA_KEY" ]; then
  .venv/bin/python -m pip install --quiet --no-deps --force-reinstall "$LLAMA_WHEELS"/*.whl
  echo "$LLAMA_KEY" > .venv/.ronghe-llama
fi
.venv/bin/python -m pip install --quiet -e '.[test]'
# spandrel (upscaler models) requires torchvision, and PyPI's torchvision is built against
# the CUDA torch: beside the CPU build it fails to import ("operator torchvision::nms does
# not exist"), and diffusers' pipelines fail with it (they import it when it is installed).
# Ronghe runs without it: spandrel uses it only for LaMa and RestoreFormer, which it does not
# load (engines/diffusion/upscalers.py imports spandrel without it).
if ! .venv/bin/python -c 'import torchvision' 2>/dev/null; then
  .venv/bin/python -m pip uninstall --quiet -y torchvision 2>/dev/null || true
fi
# One decode step of the bundled chat model in a child process: a broken llama.cpp build
# fails here, with its reason, rather than as a crash in the middle of serving.
.venv/bin/python -m ronghe.engines.llm.selfcheck
fingerprint > "$STAMP"
echo "Ronghe installed. Start it with: .venv/bin/ronghe serve" >&2
