"""The layering README "Layout" promises, checked on the source: engines compute only,
nothing that workers run imports the HTTP layer, and the HTTP layer translates: the domain
(images/, training/) checks requests and builds task params, api/ builds none."""

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


def test_the_domain_imports_nothing_from_api() -> None:
    # Where a request is checked and becomes a job: every front door calls it, none owns it.
    for package in ("images", "training", "downloads"):
        assert imported(package), package
        assert offenders(package, ("ronghe.api", "ronghe.features")) == {}, package


# The typed jobs whose params a task row holds.
JOBS = ("ImageJob", "CaptionJob", "TrainJob", "PullRequest")


def task_params_built(package: str) -> dict[str, list[str]]:
    """file -> where it writes task params: a task created (``<x>.tasks.create(…)``), a job
    made (``ImageJob(…)``; reading one with ``from_params`` is fine), a decision remembered,
    or the webhook's params key imported."""
    found: dict[str, list[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        hits = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func, receiver = node.func, node.func.value
                named_tasks = ((isinstance(receiver, ast.Attribute) and receiver.attr == "tasks")
                               or (isinstance(receiver, ast.Name) and receiver.id == "tasks"))
                if (func.attr == "create" and named_tasks) or func.attr == "remember":
                    hits.append(f"line {node.lineno}: .{func.attr}(")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in JOBS):
                hits.append(f"line {node.lineno}: {node.func.id}(")
            elif (isinstance(node, ast.ImportFrom) and node.module == "ronghe.webhooks.request"
                  and any(alias.name == "PARAM" for alias in node.names)):
                hits.append(f"line {node.lineno}: imports the webhook params key")
        if hits:
            found[str(path.relative_to(SRC))] = hits
    return found


def test_api_builds_no_task_params() -> None:
    # The check itself finds what it looks for: the domain creates tasks from typed jobs.
    assert "images/submit.py" in task_params_built("images")
    assert "training/service.py" in task_params_built("training")
    assert task_params_built("api") == {}


# The team guideline: one concept per module; a file past ~500 lines is a prompt
# to look, not a rule to split a concept over several files (a hard 400 did that, issue
# 27).  This is the backstop past which a module has surely outgrown one concept.
MAX_LINES = 600


def test_no_source_file_is_past_the_backstop() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
