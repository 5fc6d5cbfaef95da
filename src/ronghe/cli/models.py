"""``ronghe models``: the chat and image models this configuration serves."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ronghe.cli import ConfigFile, DataDir, load_settings, out


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """List configured chat and image models (name, engine or family, where, problems)."""
    from ronghe.engines.diffusion.registry import ModelRegistry, describe
    from ronghe.engines.llm.registry import list_chat_models

    settings = load_settings(data_dir, config)
    chat = list_chat_models(settings)
    registry = ModelRegistry(settings)
    images = [describe(e, e.name == settings.image_default_model) for e in registry.entries()]
    if as_json:
        print(json.dumps({"chat": chat, "image": images}, ensure_ascii=False, indent=2))
        return
    table = Table("chat model", "engine", "where", "context", "default", title="Chat")
    for m in chat:
        table.add_row(m["name"], m["engine"], m["path"] or m["base_url"] or "",
                      str(m["context"]), "yes" if m["default"] else "")
    out.print(table)
    table = Table("image model", "family", "aliases", "controlnets", "sizes", "where",
                  "status", title="Image")
    for m in images:
        table.add_row(m["name"] + (" (default)" if m["default"] else ""), m["family"],
                      ", ".join(m["aliases"]), ", ".join(m["controlnets"]), m["sizes"],
                      m["path"], m["problem"] or "ok")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
