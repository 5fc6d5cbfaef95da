"""``ronghe chat``: one question, or an interactive session, against the logged-in server."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ronghe.cli import err
from ronghe.cli.session import INTERRUPTED, Json, api_errors, client, print_json
from ronghe.client import Client


def _answer(c: Client, history: list[dict[str, str]], params: dict[str, Any]) -> str:
    """Streams the reply to stdout as it comes; returns it (partial if Ctrl-C stopped it)."""
    parts: list[str] = []
    try:
        for delta in c.chat(history, stream=True, **params):
            parts.append(delta)
            sys.stdout.write(delta)
            sys.stdout.flush()
    finally:
        sys.stdout.write("\n")
        sys.stdout.flush()
    return "".join(parts)


def _interactive(c: Client, history: list[dict[str, str]], params: dict[str, Any],
                 as_json: bool) -> None:
    if sys.stdin.isatty():
        err.print("chat with the server's model; Ctrl-D ends, Ctrl-C stops an answer",
                  highlight=False)
    while True:
        if sys.stdin.isatty():
            err.print("[bold]>[/bold] ", end="")
        line = sys.stdin.readline()
        if not line:  # Ctrl-D
            return
        if not line.strip():
            continue
        history.append({"role": "user", "content": line.rstrip("\n")})
        try:
            if as_json:
                reply = c.chat(history, **params)
                print_json({"reply": reply.text, "finish_reason": reply.finish_reason,
                            "usage": reply.usage.model_dump() if reply.usage else None})
                text = reply.text
            else:
                text = _answer(c, history, params)
        except KeyboardInterrupt:
            err.print("(stopped)", highlight=False)
            history.pop()
            continue
        history.append({"role": "assistant", "content": text})


def chat(
    question: Annotated[str | None, typer.Argument(
        help="What to ask; without it, an interactive session (history kept, Ctrl-D ends).",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="A chat model name.",
                                              show_default=False)] = None,
    system: Annotated[str | None, typer.Option("--system", help="A system prompt.",
                                               show_default=False)] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="max_new_tokens.",
                                                   show_default=False)] = None,
    temperature: Annotated[float | None, typer.Option(help="0-2, default 0.8.",
                                                      show_default=False)] = None,
    as_json: Json = False,
) -> None:
    """Ask the chat model; the answer streams as it is written."""
    params = {k: v for k, v in (("model", model), ("max_new_tokens", max_tokens),
                                ("temperature", temperature)) if v is not None}
    history = [{"role": "system", "content": system}] if system else []
    with client() as c, api_errors():
        try:
            if question is None:
                _interactive(c, history, params, as_json)
            elif as_json:
                reply = c.chat([*history, {"role": "user", "content": question}], **params)
                print_json({"reply": reply.text, "finish_reason": reply.finish_reason,
                            "usage": reply.usage.model_dump() if reply.usage else None})
            else:
                _answer(c, [*history, {"role": "user", "content": question}], params)
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED) from None


def register(app: typer.Typer) -> None:
    app.command("chat", rich_help_panel="Using a server")(chat)
