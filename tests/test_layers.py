"""The layering README "Layout" promises, checked on the source: engines compute only, and
nothing that workers run imports the HTTP layer."""

from __future__ import annotations

import ast
from pathlib import Path

import ronghe

SRC = Path(ronghe.__file__).parent


def imported(package: str) -> dict[str, set[str]]:
    """file -> the ronghe modules it imports (at any depth, TYPE_CHECKING included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(SRC))] = {n for n in names if n.startswith("ronghe.")}
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path, names in imported(package).items():
        hits = sorted(n for n in names
                      if any(n == f or n.startswith(f + ".") for f in forbidden))
        if hits:
            bad[path] = hits
    return bad


def test_engines_import_no_api_jobs_catalog_or_db() -> None:
    assert imported("engines")  # the walk found the package
    assert offenders("engines", ("ronghe.api", "ronghe.jobs", "ronghe.catalog",
                                 "ronghe.db")) == {}


def test_what_workers_run_imports_nothing_from_api() -> None:
    for package in ("tasks", "jobs", "engines"):
        assert offenders(package, ("ronghe.api", "ronghe.features")) == {}, package
    assert offenders("cli", ("ronghe.api",)) == {}


# The guideline (DEVELOPERS.md): one concept per module; a file past ~500 lines is a prompt
# to look, not a rule to split a concept over several files (a hard 400 did that, issue
# 27).  This is the backstop past which a module has surely outgrown one concept.
MAX_LINES = 600


def test_no_source_file_is_past_the_backstop() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
