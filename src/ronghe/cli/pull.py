"""``ronghe models pull`` and ``ronghe models rm``: install a model by name, remove one.

``pull REF`` takes a catalogue name (``--list`` shows them), a Hugging Face repo id or an
http(s) URL (``ronghe.downloads``).  Progress goes to stderr as rich bars (speed, ETA), or
to stdout as JSON lines with ``--json``; the result goes to stdout.  Ctrl-C stops it and
keeps what was downloaded: the same command again resumes.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as Bars
from rich.table import Table

from ronghe.cli import ConfigFile, DataDir, err, fail, load_settings, out
from ronghe.cli.common import services
from ronghe.downloads.progress import DOWNLOADING, VERIFYING, Progress

AsJson = Annotated[bool, typer.Option("--json", help="JSON lines on stdout instead of "
                                      "progress bars and tables.")]
# JSON progress lines at most this often (each phase change is always printed).
JSON_EVERY_SECONDS = 0.5


class BarReporter:
    """rich progress bars on stderr: the download (bytes, speed, ETA), then the check."""

    def __init__(self) -> None:
        self.bars = Bars(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                         TransferSpeedColumn(), TimeRemainingColumn(), console=err,
                         transient=False)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarReporter:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def update(self, progress: Progress) -> None:
        if progress.phase == DOWNLOADING:
            bar = self._bar("download", f"downloading {progress.name}", progress.bytes_total)
            self.bars.update(bar, completed=progress.bytes_done, total=progress.bytes_total,
                             description=f"{progress.name} [{progress.files_done + 1}/"
                                         f"{progress.files_total}]")
        elif progress.phase == VERIFYING:
            bar = self._bar(progress.file, f"checking {progress.file}", progress.bytes_total)
            self.bars.update(bar, completed=progress.bytes_done)

    def _bar(self, key: str, description: str, total: int | None) -> TaskID:
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(description, total=total)
        return self.tasks[key]

    def note(self, message: str) -> None:
        self.bars.console.print(message, highlight=False)


class JsonReporter:
    """One JSON object per line on stdout: ``{"event": "progress", ...}``, notes, the end."""

    def __init__(self) -> None:
        self.last = 0.0
        self.phase = ""

    def __enter__(self) -> JsonReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def emit(event: str, **data: Any) -> None:
        print(json.dumps({"event": event, **data}, ensure_ascii=False), flush=True)

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.phase == self.phase and now - self.last < JSON_EVERY_SECONDS:
            return
        self.phase, self.last = progress.phase, now
        self.emit("progress", **progress.to_dict())

    def note(self, message: str) -> None:
        self.emit("note", message=message)


def _catalogue(as_json: bool, installed: dict[str, dict[str, Any]]) -> None:
    from ronghe.downloads import catalogue

    if as_json:
        for entry in catalogue.ENTRIES:
            where = installed.get(entry.name)
            print(json.dumps({**entry.describe(), "installed": where is not None,
                              "installed_bytes": where["bytes"] if where else None},
                             ensure_ascii=False))
        return
    table = Table("name", "kind", "family", "size", "VRAM", "licence", "", title="Catalogue "
                  "(ronghe models pull NAME)")
    for entry in catalogue.ENTRIES:
        notes = ["installed"] if entry.name in installed else []
        notes += ["gated: accept the licence on the Hub, set HF_TOKEN"] if entry.gated else []
        table.add_row(entry.name, entry.kind, entry.family or "",
                      f"{entry.size_gb:g} GB", f"{entry.vram_gb:g} GB" if entry.vram_gb else "",
                      entry.licence, "; ".join(notes))
    out.print(table)


def pull(
    ref: Annotated[str | None, typer.Argument(help="A catalogue name (see --list), a Hub "
                                              "repo id (org/name) or an https:// URL.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub: a branch, tag or "
                                                 "commit (default main).")] = None,
    file: Annotated[str | None, typer.Option("--file", help="Hub: pull this one file of "
                                             "the repo.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Serve it under this name.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="image, chat, lora or upscaler "
                                             "(default: told from the files).")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="The file's SHA-256, checked "
                                               "after the download.")] = None,
    allow_pickle: Annotated[bool, typer.Option(
        "--allow-pickle", help="Allow .ckpt/.pt/.bin pickle files (they can run code when "
        "loaded).")] = False,
    show_list: Annotated[bool, typer.Option("--list", help="Show the catalogue.")] = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Download a model into the models folder: resumable, verified, served at once."""
    from ronghe.catalog.folder import scan_all
    from ronghe.downloads.install import Places, installed_entries
    from ronghe.downloads.pull import HubAccess, Puller, PullRequest
    from ronghe.errors import RongheError

    settings = load_settings(data_dir, config)
    places = Places(settings.data_dir, settings.models_path, settings.loras_path)
    if show_list:
        _catalogue(as_json, installed_entries(places))
        return
    if not ref:
        fail("give what to pull: a catalogue name (ronghe models pull --list), a Hub repo id "
             "or a URL")
    request = PullRequest(str(ref), revision, file, name, kind, sha256, allow_pickle)
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    reporter = JsonReporter() if as_json else BarReporter()
    puller = Puller(places, reporter, HubAccess(token, settings.hf_endpoint))
    try:
        with reporter:
            installed = puller.pull(request)
    except KeyboardInterrupt:
        staging = places.staging / request.check().key()
        message = (f"interrupted: what was downloaded is kept in {staging}; run the same "
                   "command again to resume")
        if as_json:
            JsonReporter.emit("interrupted", message=message, staging=str(staging))
        err.print(message, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except RongheError as exc:
        if as_json:
            JsonReporter.emit("error", message=exc.msg, field=exc.field,
                              kept=bool(getattr(exc, "keep_partial", False)))
        fail(exc.msg)
        raise AssertionError("unreachable") from exc
    finally:
        puller.close()
    with services(data_dir, config) as svc:
        scan_all(svc)  # every process (a running server too) serves it now
    if as_json:
        JsonReporter.emit("done", **installed.to_dict())
        return
    size = f"{installed.bytes / 1e9:.2f} GB"
    what = installed.family or installed.kind
    verb = "already installed" if installed.already else "pulled"
    out.print(f"{verb} {installed.name!r} ({what}, {size}) at {installed.path}",
              highlight=False, soft_wrap=True)
    if installed.problem:
        err.print(f"[yellow]note:[/yellow] the models folder cannot use it yet: "
                  f"{installed.problem}", highlight=False, soft_wrap=True)
    elif installed.kind == "chat":
        out.print(f"chat with it: ronghe chat --model {installed.name} \"…\" (or pick it in "
                  "the web app)", highlight=False)


def rm(
    name: Annotated[str, typer.Argument(help="The model's name (ronghe models lists them).")],
    kind: Annotated[str | None, typer.Option("--kind", help="image, chat, lora or upscaler, "
                                             "when several kinds share the name.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Remove a model of the models folder (or the LoRA or upscalers folder), with its
    sidecar; a running server stops listing it."""
    from ronghe.catalog.folder import scan_all
    from ronghe.downloads.install import sidecar_of, size_of
    from ronghe.engines.diffusion.library import ModelsFolder, sidecar_path

    settings = load_settings(data_dir, config)
    folder = ModelsFolder(settings.models_path, settings.loras_path)
    found = [(i.kind, Path(i.path)) for i in folder.scan() if i.name == name]
    upscalers = settings.models_path / "upscalers"
    if upscalers.is_dir():
        found += [("upscaler", p) for p in upscalers.iterdir()
                  if p.is_file() and p.stem == name and not p.name.endswith(".json")]
    if kind:
        found = [(k, p) for k, p in found if k == kind]
    if not found:
        fail(f"no model named {name!r} in {settings.models_path} or {settings.loras_path} "
             "(models named in the configuration are removed there)")
    if len(found) > 1:
        fail(f"several models are named {name!r} ({', '.join(k for k, _ in found)}); "
             "choose one with --kind")
    what, path = found[0]
    size = size_of(path)
    if not yes:
        if not sys.stdin.isatty():
            fail("pass --yes to remove without asking")
        typer.confirm(f"Remove the {what} model {name!r} ({size / 1e9:.2f} GB at {path})?",
                      abort=True)
    # A file's <stem>.ronghe.json, a folder's <name>.ronghe.json beside it (its own
    # ronghe.json goes with it).
    sides = {sidecar_of(path), sidecar_path(path)} - {path / "ronghe.json"}
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    for side in sides:
        side.unlink(missing_ok=True)
    with services(data_dir, config) as svc:
        scan_all(svc)
    if as_json:
        print(json.dumps({"removed": name, "kind": what, "path": str(path), "bytes": size}))
    else:
        out.print(f"removed {name!r} ({what}, {size / 1e9:.2f} GB freed)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)
    app.command("rm")(rm)
