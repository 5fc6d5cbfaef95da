"""``ronghe train``: upload images, make a dataset, train a LoRA with a live progress bar."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ronghe.cli import err, fail
from ronghe.cli.session import INTERRUPTED, Json, api_errors, client, note, print_json
from ronghe.client import Client, TrainProgress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CANCEL_WAIT_SECONDS = 60


def image_files(paths: list[Path]) -> list[Path]:
    """The images named, and those directly inside the directories named, in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            fail(f"no such file or directory: {path}")
    if not found:
        fail("no images (.png, .jpg, .jpeg, .webp) in " + ", ".join(map(str, paths)))
    return found


def _bar(*columns: Any) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *columns, console=err)


def upload(c: Client, files: list[Path]) -> list[str]:
    with _bar(TimeElapsedColumn()) as bar:
        row = bar.add_task("uploading", total=len(files))
        return c.upload(files, on_progress=lambda done, _total: bar.update(row,
                                                                          completed=done))


def watch(c: Client, task_id: str) -> TrainProgress:
    """Follows the training with step / total, loss and the server's ETA."""
    def show(p: TrainProgress) -> None:
        loss = f"{p.loss:.4f}" if p.loss is not None else "-"
        eta = f"{p.eta_seconds:.0f}s" if p.eta_seconds is not None else "-"
        bar.update(row, completed=p.step, total=p.total_steps or None,
                   info=f"{p.phase or p.state} loss {loss} ETA {eta}")

    with _bar(TextColumn("{task.fields[info]}"), TimeRemainingColumn()) as bar:
        row = bar.add_task("training", total=None, info="pending")
        return c.wait_training(task_id, on_progress=show)


def interrupted(c: Client, task_id: str) -> None:
    """Ctrl-C: ask whether to cancel the training on the server; then exit 130."""
    try:
        cancel = typer.confirm(f"\nCancel training {task_id} on the server?", default=False,
                               err=True)
    except (typer.Abort, KeyboardInterrupt, EOFError):
        cancel = False
    if not cancel:
        note(f"the training goes on; follow it with: ronghe result {task_id}")
        raise typer.Exit(INTERRUPTED)
    with api_errors():
        c.train_cancel(task_id)
        final = c.wait_training(task_id, timeout=CANCEL_WAIT_SECONDS)
    note(f"training {task_id} {final.state}")
    raise typer.Exit(INTERRUPTED)


def train(
    paths: Annotated[list[Path], typer.Argument(help="Images, or directories of images.",
                                                show_default=False)],
    name: Annotated[str, typer.Option("--name", help="The model's name, to use as "
                                      "'ronghe generate --model NAME'.")],
    trigger: Annotated[str, typer.Option("--trigger", help="Trigger word: starts every "
                                         "training caption; put it in your prompts.")],
    main_body: Annotated[str, typer.Option(help="Style, Human, Architecture, Plants or "
                                           "Animals: picks the preset.")] = "Style",
    steps: Annotated[int | None, typer.Option(help="Training steps (the preset's "
                                              "otherwise).", show_default=False)] = None,
    base_model: Annotated[str | None, typer.Option(help="Base model (the server picks "
                                                   "otherwise).", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.", show_default=False)] = None,
    as_json: Json = False,
) -> None:
    """Train a LoRA on your images and print its name.

    Uploads the images, makes a dataset, trains with a live bar (step / total, loss, ETA).
    Ctrl-C asks whether to cancel the training on the server."""
    files = image_files(paths)
    fields: dict[str, Any] = {"trigger_word": trigger, "main_body": main_body}
    for key, value in (("steps", steps), ("base_model", base_model), ("seed", seed)):
        if value is not None:
            fields[key] = value
    with client() as c, api_errors():
        urls = upload(c, files)
        dataset_id = c.create_dataset(name, urls)
        task_id = c.train_submit(name, [dataset_id], **fields)
        note(f"training task {task_id} (dataset {dataset_id}, {len(urls)} images)")
        try:
            final = watch(c, task_id)
        except KeyboardInterrupt:
            interrupted(c, task_id)
            raise
    if final.state != "done":
        fail(f"training {task_id} {final.state}: {final.error_msg or final.state}")
    if as_json:
        print_json({"model_name": final.model_name, "model_id": final.model_id,
                    "task_id": task_id, "dataset_id": dataset_id,
                    "base_model": final.base_model, "trigger_word": final.trigger_word,
                    "samples": [s.model_dump() for s in final.samples]})
        return
    print(final.model_name)
    sys.stdout.flush()
    note(f"trained {final.model_name!r}; use it with: ronghe generate "
         f"{shlex.quote(trigger + ' ...')} --model {shlex.quote(final.model_name)}")


def register(app: typer.Typer) -> None:
    app.command("train", rich_help_panel="Using a server")(train)
