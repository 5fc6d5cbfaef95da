"""What the installed package imports (issue 27): nothing from the repository's tools/ and
tests/, which are not installed; and importing it sets no environment variables, since a
value set at import would apply to every command, `serve` and `worker` included, as
HF_HUB_OFFLINE once did when the CLI imported the demo model's build command."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import ronghe

SRC = Path(ronghe.__file__).parent

# Runs in a fresh interpreter, since this one has imported most of ronghe already.  Every
# module of the package is imported with os.environ recording who writes to it: libraries
# may (OpenCV sets LD_LIBRARY_PATH when it loads), ronghe's own code may not.
PROBE = r"""
import importlib, os, pkgutil, sys
from pathlib import Path

import ronghe

ROOT = Path(ronghe.__file__).parent
writes = []


def writer():
    # The first frame outside os.environ's own machinery (setdefault, update, pop ...).
    frame = sys._getframe(2)
    while frame.f_globals.get("__name__") in ("os", "_collections_abc"):
        frame = frame.f_back
    return Path(frame.f_code.co_filename)


class Recorded(type(os.environ)):
    def __setitem__(self, key, value):
        writes.append((key, writer()))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        writes.append((key, writer()))
        super().__delitem__(key)


os.environ.__class__ = Recorded
# The recorder sees a write made from a file of the package.
exec(compile("import os; os.environ.setdefault('RONGHE_PROBE', '1')",
             str(ROOT / "probe.py"), "exec"))
assert writes == [("RONGHE_PROBE", ROOT / "probe.py")], writes
writes.clear()

names = [m.name for m in pkgutil.walk_packages(ronghe.__path__, "ronghe.")
         # __main__ runs the CLI; the migration scripts run only inside alembic.
         if not m.name.endswith("__main__") and not m.name.startswith("ronghe.db.migrations")]
for name in names:
    importlib.import_module(name)
assert len(names) > 50 and "ronghe.cli" in names and "ronghe.app" in names, names
print(sorted({(key, str(path)) for key, path in writes if ROOT in path.parents}))
"""


def test_importing_every_module_of_ronghe_sets_no_environment_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "RONGHE_PROBE")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_the_package_imports_nothing_from_the_repositorys_tools_or_tests() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            bad = [n for n in names if n.split(".")[0] in ("tools", "tests")]
            if bad:
                found[str(path.relative_to(SRC))] = bad
    assert found == {}
