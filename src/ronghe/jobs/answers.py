"""What a task looks like to its owner, per task kind: the JSON ``task_result`` (images) or
``train_progress`` (training) answers.  Streams (``task_events``) and webhooks send the same
JSON, so the process keeps one builder per kind in ``Services.answers`` (``ronghe.runtime``
registers the API's) instead of each reader knowing every kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ronghe.jobs.store import TaskView

# (services, task, base_url) -> the answer's JSON data.
Answer = Callable[[Any, TaskView, str], dict[str, Any]]


def answer(services: Any, task: TaskView, base_url: str) -> dict[str, Any]:
    build = services.answers.get(task.kind)
    if build is None:  # a kind no builder was registered for in this process
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
