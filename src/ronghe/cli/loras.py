"""``ronghe lora``: trained LoRA models across users (an operator's view)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from ronghe.cli import ConfigFile, DataDir, err, out, run_service
from ronghe.cli.common import services

app = typer.Typer(help="List and publish users' LoRA models.", no_args_is_help=True)

LIST_LIMIT = 1000
LoraId = Annotated[int, typer.Argument(help="The model's id (its versionid).")]


@app.command("list")
def list_loras(
    public: Annotated[bool, typer.Option("--public", help="Only published ones.")] = False,
    query: Annotated[str, typer.Option("--query", "-q", help="Name/description filter.")] = "",
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Ready LoRAs, newest first: id, owner id, name, base model, trigger word, public."""
    with services(data_dir, config) as svc:
        listing = svc.loras.list_public if public else partial(svc.loras.list, None)
        items, total = listing(query, 0, LIST_LIMIT)
        for info in items:
            out.print(f"{info.id}\tuser {info.user_id}\t{info.name}\t{info.base_model}\t"
                      f"{info.trigger_word}\t{'public' if info.public else 'private'}",
                      highlight=False)
        if total > len(items):
            err.print(f"{total - len(items)} older ones not shown; narrow with --query",
                      highlight=False)


@app.command("publish")
def publish(lora_id: LoraId, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """List the model in /api/v1b/models/lora and let every user apply it (lora_configs)."""
    with services(data_dir, config) as svc:
        info = run_service(svc.loras.set_public, lora_id, True)
        err.print(f"model {info.id} ({info.name!r}) is public", highlight=False)


@app.command("unpublish")
def unpublish(lora_id: LoraId, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Make the model private to its owner again (tasks already submitted still run)."""
    with services(data_dir, config) as svc:
        info = run_service(svc.loras.set_public, lora_id, False)
        err.print(f"model {info.id} ({info.name!r}) is private", highlight=False)
