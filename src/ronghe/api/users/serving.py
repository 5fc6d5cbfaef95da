"""The answers of the account endpoints: users, keys and queue entries as JSON."""

from __future__ import annotations

from typing import Any

from ronghe.api.images.listing import stamp
from ronghe.db.models import ApiKey, User
from ronghe.jobs import Status, TaskView


def ok(info: Any) -> dict[str, Any]:
    return {"code": 0, "info": info, "msg": ""}


def user_body(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "is_admin": bool(user.is_admin),
            "is_active": bool(user.is_active), "create_time": stamp(user.created_at)}


def paged(items: list[Any], page: int, per_page: int, total: int) -> dict[str, Any]:
    return ok({"items": items, "page": page, "per_page": per_page, "total": total,
               "has_next": page * per_page < total, "has_prev": page > 1})


def key_body(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix,
            "create_time": stamp(key.created_at), "last_used_time": stamp(key.last_used_at)}


def queue_item(task: TaskView, email: str) -> dict[str, Any]:
    p = task.params
    started = stamp(task.started_at) if task.state is Status.RUNNING else ""
    item: dict[str, Any] = {
        "task_id": task.id, "kind": task.kind, "state": task.state.value,
        "progress": round(task.progress, 4), "user_id": task.user_id, "email": email,
        "create_time": stamp(task.created_at), "start_time": started,
        "queue": task.queue}
    if task.kind == "image":
        item.update(model=p.get("model", ""), prompt=p.get("prompt", ""))
    else:
        item.update(model=p.get("base_model", ""), model_name=p.get("name", ""))
    return item
