"""What the user commands share: stored credentials, the client, errors, JSON output.

``ronghe login`` stores the server's URL and a ``get_token`` token in
``$XDG_CONFIG_HOME/ronghe/credentials`` (``~/.config/ronghe/credentials``), mode 0600.
``RONGHE_URL``, ``RONGHE_TOKEN`` and ``RONGHE_API_KEY`` override it.  Chat uses the same
token (the chat endpoints accept it), or the API key when one is given.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from ronghe.cli import err, fail
from ronghe.client import APIError, Client

DEFAULT_URL = "http://127.0.0.1:8000"
INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text and tables.")]


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ronghe"


def credentials_path() -> Path:
    return config_dir() / "credentials"


def load_credentials() -> dict[str, Any]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}; run 'ronghe login' again")
    return data if isinstance(data, dict) else {}


def save_credentials(data: dict[str, Any]) -> Path:
    """Written with mode 0600 from the start (never readable by others, not even briefly)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)  # an existing file keeps its mode through O_CREAT
    os.replace(tmp, path)
    return path


def remove_credentials() -> bool:
    try:
        credentials_path().unlink()
        return True
    except FileNotFoundError:
        return False


def server_url(url: str | None = None) -> str:
    return (url or os.environ.get("RONGHE_URL") or load_credentials().get("url")
            or DEFAULT_URL).rstrip("/")


def client() -> Client:
    """A client for the logged-in server, or an exit saying how to log in."""
    stored = load_credentials()
    url = server_url()
    token = os.environ.get("RONGHE_TOKEN")
    if not token and stored.get("url", "").rstrip("/") == url:
        token = stored.get("token")  # a stored token is only for the server it came from
    api_key = os.environ.get("RONGHE_API_KEY")
    if not token and not api_key:
        fail(f"not logged in to {url}: run 'ronghe login --url {url} --email you@example.com' "
             "(or set RONGHE_TOKEN)")
    try:
        return Client(url, token=token, api_key=api_key)
    except ValueError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


@contextmanager
def api_errors() -> Iterator[None]:
    """The server's message on stderr and exit 1, instead of a traceback; Ctrl-C exits 130
    (click would say "Aborted!" and exit 1)."""
    try:
        yield
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        raise typer.Exit(INTERRUPTED) from None
    except APIError as exc:
        hint = ""
        if exc.status == 401 and credentials_path().exists():
            hint = "; log in again with 'ronghe login'"
        fail(f"{exc.msg}{hint}")


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    print(json.dumps(value, ensure_ascii=False, indent=2))
    sys.stdout.flush()


def note(msg: str) -> None:
    # Unwrapped: notes hold commands and ids to copy.
    err.print(msg, highlight=False, soft_wrap=True)
