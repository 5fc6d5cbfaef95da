"""The ``ronghe`` command.  Every subcommand takes ``--data-dir`` and ``--config``.

Results go to stdout (so scripts can capture them); messages go to stderr.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from ronghe.errors import RongheError
from ronghe.settings import Settings, UnsafeSettingsError

app = typer.Typer(
    name="ronghe",
    help="Ronghe (融合): a self-hosted server for SenseTime's fusion API on open models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (database, files, secret). "
                 "Env: RONGHE_DATA_DIR. Default: ./data", show_default=False),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config file with settings. Env: RONGHE_CONFIG.",
                 exists=True, dir_okay=False, show_default=False),
]


def load_settings(data_dir: Path | None = None, config: Path | None = None,
                  **overrides: Any) -> Settings:
    """Settings from flags > environment > config file > defaults; exits cleanly on errors."""
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if config is not None:
        kwargs["config_file"] = config
    try:
        return Settings(**kwargs).prepare()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"invalid setting {where}: {first['msg']}")
    except (UnsafeSettingsError, ValueError) as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


def fail(msg: str, code: int = 1) -> None:
    # Unwrapped: a server's message stays one line, whole, however wide the terminal.
    err.print(f"[red]error:[/red] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_service(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls a service and turns its client-facing errors into a clean CLI error."""
    try:
        return fn(*args, **kwargs)
    except RongheError as exc:
        fail(exc.msg)


@app.command()
def serve(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    host: Annotated[str | None, typer.Option(help="Address to bind. Env: RONGHE_HOST. "
                                             "Default 127.0.0.1", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="Port. Env: RONGHE_PORT. Default 8000",
                                             show_default=False)] = None,
) -> None:
    """Run the HTTP server (API, docs at /docs, health at /healthz, metrics at /metrics)."""
    import uvicorn

    from ronghe.app import create_app
    from ronghe.logs import configure

    settings = load_settings(data_dir, config, host=host, port=port)
    configure(settings.log_level, settings.log_json)
    application = create_app(settings)
    err.print(f"Ronghe serving on http://{settings.host}:{settings.port} "
              f"(data: {settings.data_dir}; docs: /docs)", highlight=False)
    # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from 127.0.0.1 as
    # the client; the app decides alone, from trusted_proxies (ronghe.api.client_address).
    uvicorn.run(application, host=settings.host, port=settings.port, log_config=None,
                log_level=settings.log_level, timeout_graceful_shutdown=10,
                proxy_headers=False)


@app.command()
def migrate(data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Create or upgrade the database schema (serve does this on start too)."""
    from ronghe.db.engine import make_engine
    from ronghe.db.migrate import upgrade

    settings = load_settings(data_dir, config)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    engine.dispose()
    err.print("database is up to date")


def _register_subapps() -> None:
    for module, name in (("ronghe.cli.users", "user"), ("ronghe.cli.keys", "key"),
                         ("ronghe.cli.loras", "lora"), ("ronghe.cli.models", None),
                         ("ronghe.cli.worker", None),
                         # the user's commands, against a server over HTTP
                         ("ronghe.cli.login", None), ("ronghe.cli.chat", None),
                         ("ronghe.cli.generate", None), ("ronghe.cli.train", None)):
        mod = importlib.import_module(module)
        if name is None:
            mod.register(app)
        else:
            app.add_typer(mod.app, name=name)


_register_subapps()


def main() -> None:
    app()
