"""What a task looks like to its owner, per task kind: the JSON ``task_result`` (images) or
``train_progress`` (training) answers.  Streams (``task_events``) and webhooks send the same
JSON, so features register their answer builders here instead of each reader knowing every
kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ronghe.jobs.store import TaskView

Answer = Callable[[Any, TaskView, str], dict[str, Any]]
_ANSWERS: dict[str, Answer] = {}


def register_answer(kind: str, build: Answer) -> None:
    _ANSWERS[kind] = build


def answer(services: Any, task: TaskView, base_url: str) -> dict[str, Any]:
    build = _ANSWERS.get(task.kind)
    if build is None:  # a kind whose feature is not installed in this process
        return {"task_id": task.id, "state": task.state.value, "error_msg": task.error_msg,
                "progress": round(task.progress, 4)}
    return build(services, task, base_url)


def base_url(settings: Any) -> str:
    """The address webhooks put in file URLs: public_base_url, else the listen address."""
    if settings.public_base_url:
        return str(settings.public_base_url).rstrip("/")
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"
