"""``ronghe models``: the chat and image models this configuration serves; ``scan`` and
``add`` for the models folder (``<data_dir>/models``, LoRAs in ``<data_dir>/loras``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ronghe.cli import ConfigFile, DataDir, fail, load_settings, out
from ronghe.cli.common import services
from ronghe.engines.diffusion.families import FAMILIES

app = typer.Typer(help="List the models served; scan or add models you bring.",
                  invoke_without_command=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
FAMILY_CHOICES = tuple(FAMILIES)


@app.callback()
def models(ctx: typer.Context, as_json: AsJson = False, data_dir: DataDir = None,
           config: ConfigFile = None) -> None:
    """List chat and image models (name, engine or family, where, problems)."""
    if ctx.invoked_subcommand is not None:
        return
    from ronghe.engines.diffusion.registry import ModelRegistry, describe
    from ronghe.engines.llm.registry import list_chat_models

    settings = load_settings(data_dir, config)
    registry = ModelRegistry(settings)  # scans the models folder
    chat = list_chat_models(settings, registry.found)
    images = [describe(e, e.name == settings.image_default_model, registry)
              for e in registry.entries()]
    for row in [*images, *chat]:  # disk use per model (ronghe models rm frees it)
        row["bytes"] = _bytes(row.get("path"))
    loras = [{"name": i.name, "family": i.family, "path": i.path, "problem": i.problem}
             for i in registry.found if i.kind == "lora"]
    if as_json:
        print(json.dumps({"chat": chat, "image": images, "lora": loras}, ensure_ascii=False,
                         indent=2))
        return
    table = Table("chat model", "engine", "where", "context", "default", "disk", title="Chat")
    for m in chat:
        table.add_row(m["name"], m["engine"], m["path"] or m["base_url"] or "",
                      str(m["context"]), "yes" if m["default"] else "", _gb(m["bytes"]))
    out.print(table)
    table = Table("image model", "family", "aliases", "controlnets", "sizes", "where",
                  "disk", "status", title="Image")
    # A problem is what a reader looks for: its column keeps room; long paths give way.
    table.columns[5].overflow = "ellipsis"
    table.columns[5].max_width = 40
    table.columns[7].min_width = 30
    for m in images:
        table.add_row(m["name"] + (" (default)" if m["default"] else ""), m["family"],
                      ", ".join(m["aliases"]), ", ".join(m["controlnets"]), m["sizes"],
                      m["path"], _gb(m["bytes"]), m["problem"] or "ok")
    out.print(table)
    if loras:
        _print_loras(loras)


def _bytes(path: str | None) -> int | None:
    from ronghe.downloads.install import size_of

    return size_of(Path(path)) if path and Path(path).exists() else None


def _gb(size: int | None) -> str:
    return "" if size is None else f"{size / 1e9:.2f} GB"


def _print_loras(rows: list[dict[str, Any]]) -> None:
    table = Table("LoRA", "family", "where", "status", title="LoRA folder")
    for m in rows:
        table.add_row(m["name"], m.get("family") or "unknown", m.get("path", ""),
                      m.get("problem") or m.get("state") or "ok")
    out.print(table)


def _print_scan(found: dict[str, list[dict[str, Any]]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return
    table = Table("kind", "name", "family", "where", "status", title="Models folder")
    for kind in ("image", "chat"):
        for m in found[kind]:
            table.add_row(kind, m["name"], m.get("family") or "", m["path"],
                          m["problem"] or "ok")
    out.print(table)
    if found["lora"]:
        _print_loras(found["lora"])


@app.command("scan")
def scan(as_json: AsJson = False, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Look at the models and LoRA folders again; a running server picks the result up."""
    from ronghe.catalog.folder import scan_all

    with services(data_dir, config) as svc:
        _print_scan(scan_all(svc), as_json)


@app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="A .safetensors/.ckpt/.gguf file or a "
                                         "diffusers folder.", exists=True)],
    name: Annotated[str | None, typer.Option("--name", help="Serve it under this name "
                                             "(default: its file name).")] = None,
    family: Annotated[str | None, typer.Option("--family", help="demo, sd15, sd2 or sdxl "
                                               "(default: read from its weights).")] = None,
    link: Annotated[bool, typer.Option("--link", help="Symlink instead of copying.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Add it even when it looks "
                                        "unusable (it is listed with its problem).")] = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Copy (or link) a model into the models folder, or a LoRA into the LoRA folder."""
    from ronghe.catalog.folder import scan_all
    from ronghe.engines.diffusion import library

    if family is not None and family not in FAMILY_CHOICES:
        fail(f"--family must be one of {', '.join(FAMILY_CHOICES)}, not {family!r}")
    settings = load_settings(data_dir, config)
    source = path.expanduser().resolve()
    kind = library.classify(source)
    if kind is None:
        fail(f"{source} is not a diffusers folder (with model_index.json), a .safetensors, "
             ".ckpt or .gguf file")
    stem = name or (source.name if source.is_dir() else source.stem)
    if not stem or "/" in stem or stem.startswith(".") or len(stem) > library.MAX_NAME:
        fail(f"--name {stem!r}: 1-{library.MAX_NAME} characters, no '/', not starting with '.'")
    root = settings.loras_path if kind == "lora" else settings.models_path
    target = root / (stem if source.is_dir() else stem + source.suffix.lower())
    if target.exists() or target.is_symlink():
        fail(f"{target} exists already; choose another --name")
    verdict_family, problem, _ = library.inspect(source, kind, library.demo_signature(),
                                                 stated=family)
    if problem and not force:
        fail(f"{source.name}: {problem}")
    root.mkdir(parents=True, exist_ok=True)
    if link:
        target.symlink_to(source, target_is_directory=source.is_dir())
    elif source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    if family is not None:
        library.write_family(target, family)
    with services(data_dir, config) as svc:
        found = scan_all(svc)
    rows = [r for r in found["image" if kind == "image" else kind] if r["name"] == stem]
    _print_scan({"image": rows if kind == "image" else [], "chat": rows if kind == "chat" else [],
                 "lora": rows if kind == "lora" else []}, as_json)
    if verdict_family and not as_json:
        out.print(f"added {stem!r} ({verdict_family}) at {target}", highlight=False)


def register(root: typer.Typer) -> None:
    from ronghe.cli import pull  # pull and rm (ronghe.downloads)

    pull.register(app)
    root.add_typer(app, name="models")
