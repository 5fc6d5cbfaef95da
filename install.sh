#!/usr/bin/env bash
# Installs Ronghe and everything it needs into ./.venv (Python 3.11).
# The first run builds llama-cpp-python from source (about 10-15 minutes on 2 cores);
# pip caches the wheel, so later installs take a minute or two.
set -euo pipefail
cd "$(dirname "$0")"

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
.venv/bin/python -m pip install --quiet -e '.[test]'
echo "Ronghe installed. Start it with: .venv/bin/ronghe serve" >&2
