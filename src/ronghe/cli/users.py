"""``ronghe user``: accounts that log in with get_token."""

from __future__ import annotations

from typing import Annotated

import typer

from ronghe.cli import ConfigFile, DataDir, err, out, run_service
from ronghe.cli.common import services

app = typer.Typer(help="Manage users (email + password accounts).", no_args_is_help=True)

Email = Annotated[str, typer.Option("--email", "-e", help="The user's email address.")]
Password = Annotated[
    str,
    typer.Option("--password", "-p", envvar="RONGHE_USER_PASSWORD", prompt=True,
                 hide_input=True, confirmation_prompt=True,
                 help="Password (8+ characters); env RONGHE_USER_PASSWORD; prompted if absent."),
]


@app.command("add")
def add(email: Email, password: Password,
        admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin (manages "
                                            "accounts, sees every queue).")] = False,
        data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Create a user."""
    with services(data_dir, config) as svc:
        user = run_service(svc.auth.add_user, email, password, admin)
        role = "admin" if admin else "user"
        err.print(f"created {role} {user.email} (id {user.id})", highlight=False)


@app.command("list")
def list_users(data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """List users: id, email, active, role, created."""
    with services(data_dir, config) as svc:
        for u in svc.auth.list_users():
            state = "active" if u.is_active else "disabled"
            role = "admin" if u.is_admin else "user"
            out.print(f"{u.id}\t{u.email}\t{state}\t{role}\t{u.created_at:%Y-%m-%d %H:%M:%S}",
                      highlight=False)


@app.command("admin")
def admin(email: Email,
          remove: Annotated[bool, typer.Option("--remove", help="Take admin rights away "
                                               "instead.")] = False,
          data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Make a user an admin (or, with --remove, a plain user again)."""
    with services(data_dir, config) as svc:
        run_service(svc.auth.set_admin, email, not remove)
        err.print(f"{email} is {'no longer' if remove else 'now'} an admin", highlight=False)


@app.command("passwd")
def passwd(email: Email, password: Password, data_dir: DataDir = None,
           config: ConfigFile = None) -> None:
    """Change a user's password (revokes the user's tokens)."""
    with services(data_dir, config) as svc:
        run_service(svc.auth.set_password, email, password)
        err.print(f"password changed for {email}; existing tokens revoked", highlight=False)


@app.command("disable")
def disable(email: Email, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Disable a user: tokens revoked, API keys and logins refused, unfinished tasks
    cancelled."""
    with services(data_dir, config) as svc:
        user_id = run_service(svc.auth.set_active, email, False)
        cancelled = svc.tasks.cancel_all_of(user_id)
        err.print(f"disabled {email}; {cancelled} unfinished task(s) cancelled",
                  highlight=False)


@app.command("enable")
def enable(email: Email, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Enable a disabled user."""
    with services(data_dir, config) as svc:
        run_service(svc.auth.set_active, email, True)
        err.print(f"enabled {email}", highlight=False)


@app.command("logout")
def logout(email: Email, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Revoke every get_token token of a user."""
    with services(data_dir, config) as svc:
        n = run_service(svc.auth.revoke_user_tokens, email)
        err.print(f"revoked {n} token(s) of {email}", highlight=False)


@app.command("token")
def token(email: Email, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Issue a get_token token for a user without their password (admin); prints it alone."""
    with services(data_dir, config) as svc:
        issued = run_service(svc.auth.issue_token, email)
        print(issued.secret)
        err.print(f"token for {email} expires {issued.expires_at:%Y-%m-%d %H:%M:%S} UTC",
                  highlight=False)
