"""``ronghe key``: chat API keys (the vendor's API_SECRET_KEY)."""

from __future__ import annotations

from typing import Annotated

import typer

from ronghe.cli import ConfigFile, DataDir, err, fail, out, run_service
from ronghe.cli.common import services

app = typer.Typer(help="Manage chat API keys.", no_args_is_help=True)


@app.command("create")
def create(
    email: Annotated[str | None, typer.Option("--email", "-e", help="Owner; defaults to the "
                                              "only user when there is exactly one.")] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="A label for the key.")] = "",
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Create an API key and print it once, alone on stdout (it is stored hashed)."""
    with services(data_dir, config) as svc:
        if email is None:
            users = svc.auth.list_users()
            if len(users) != 1:
                fail("--email is required (there is not exactly one user; add one with "
                     "'ronghe user add')")
            email = users[0].email
        issued = run_service(svc.auth.create_key, email, name)
        print(issued.secret)
        err.print(f"API key {issued.id} created for {email}; it is shown only this once",
                  highlight=False)


@app.command("list")
def list_keys(
    email: Annotated[str | None, typer.Option("--email", "-e", help="Only this user's.")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """List keys: id, prefix, owner, name, created, last used, revoked."""
    with services(data_dir, config) as svc:
        for key, owner in run_service(svc.auth.list_keys, email):
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            out.print(f"{key.id}\t{key.prefix}…\t{owner}\t{key.name}\t"
                      f"{key.created_at:%Y-%m-%d %H:%M}\t{used}\t{state}", highlight=False)


@app.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="The key's id from 'ronghe key list'.")],
           data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Revoke a key: requests carrying it are refused from now on."""
    with services(data_dir, config) as svc:
        run_service(svc.auth.revoke_key, key_id)
        err.print(f"API key {key_id} revoked", highlight=False)
