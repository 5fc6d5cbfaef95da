"""``ronghe login`` / ``ronghe logout``: the user's own session with a server."""

from __future__ import annotations

from typing import Annotated

import typer

from ronghe.cli import fail
from ronghe.cli.session import (
    Json,
    api_errors,
    credentials_path,
    load_credentials,
    note,
    print_json,
    remove_credentials,
    save_credentials,
    server_url,
)
from ronghe.client import APIError, Client


def login(
    email: Annotated[str, typer.Option("--email", "-e", help="Your account's email.")],
    url: Annotated[str | None, typer.Option("--url", help="The server. Env: RONGHE_URL. "
                                            "Default: the stored one, else "
                                            "http://127.0.0.1:8000", show_default=False)] = None,
    password: Annotated[str | None, typer.Option(
        "--password", "-p", envvar="RONGHE_PASSWORD", show_default=False,
        help="Env: RONGHE_PASSWORD; prompted for when absent.")] = None,
    as_json: Json = False,
) -> None:
    """Log in: stores the server's URL and your token for the other commands (mode 0600)."""
    base = server_url(url)
    if password is None:
        password = typer.prompt("Password", hide_input=True, err=True)
    try:
        with Client(base) as c, api_errors():
            token = c.login(email, password)
    except ValueError as exc:
        fail(str(exc))
    path = save_credentials({"url": base, "email": email, "token": token.token,
                             "expires_at": token.expires_at})
    if as_json:
        print_json({"url": base, "email": email, "expires_at": token.expires_at,
                    "credentials": str(path)})
    else:
        note(f"logged in to {base} as {email}; the token expires {token.expires_at} UTC "
             f"(stored in {path})")


def logout(as_json: Json = False) -> None:
    """Log out: revokes your token on the server and removes the stored credentials."""
    stored = load_credentials()
    revoked, problem = False, ""
    if stored.get("token") and stored.get("url"):
        try:
            with Client(stored["url"], token=stored["token"]) as c:
                c.logout()
            revoked = True
        except APIError as exc:  # expired or unreachable: the local file goes anyway
            problem = exc.msg
    removed = remove_credentials()
    if as_json:
        print_json({"revoked": revoked, "removed": removed, "error": problem or None})
        return
    if not removed:
        note(f"not logged in ({credentials_path()} does not exist)")
        return
    where = stored.get("url", "the server")
    note(f"logged out of {where}" if revoked
         else f"removed the stored credentials; the server did not revoke the token: {problem}")


def register(app: typer.Typer) -> None:
    app.command("login", rich_help_panel="Using a server")(login)
    app.command("logout", rich_help_panel="Using a server")(logout)
