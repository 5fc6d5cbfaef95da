"""The answers of the account endpoints: users, keys and queue entries as response models."""

from __future__ import annotations

from typing import TypeVar

from ronghe.api.envelopes import MiaohuaOk, miaohua_ok
from ronghe.api.images.listing import stamp
from ronghe.api.images.listing_protocol import ItemPage
from ronghe.api.users.protocol import (
    KeyInfo,
    QueuedDownload,
    QueuedImage,
    QueuedTraining,
    UserInfo,
)
from ronghe.db.models import ApiKey, User
from ronghe.jobs import Status, TaskView

Row = TypeVar("Row")


def user_body(user: User) -> UserInfo:
    return UserInfo(id=user.id, email=user.email, is_admin=bool(user.is_admin),
                    is_active=bool(user.is_active), create_time=stamp(user.created_at))


def paged(items: list[Row], page: int, per_page: int, total: int) -> MiaohuaOk[ItemPage[Row]]:
    return miaohua_ok(ItemPage[Row](items=items, page=page, per_page=per_page, total=total,
                                    has_next=page * per_page < total, has_prev=page > 1))


def key_body(key: ApiKey) -> KeyInfo:
    return KeyInfo(id=key.id, name=key.name, prefix=key.prefix,
                   create_time=stamp(key.created_at), last_used_time=stamp(key.last_used_at))


def queue_item(task: TaskView, email: str) -> QueuedImage | QueuedTraining | QueuedDownload:
    p = task.params
    started = stamp(task.started_at) if task.state is Status.RUNNING else ""
    common = dict(task_id=task.id, kind=task.kind, state=task.state.value,
                  progress=round(task.progress, 4), user_id=task.user_id, email=email,
                  create_time=stamp(task.created_at), start_time=started, queue=task.queue)
    if task.kind == "image":
        return QueuedImage(**common, model=p.get("model", ""), prompt=p.get("prompt", ""))
    if task.kind == "download":
        name = (task.detail or {}).get("name") or p.get("name") or ""
        return QueuedDownload(**common, model=p.get("ref", ""), model_name=name)
    return QueuedTraining(**common, model=p.get("base_model", ""),
                          model_name=p.get("name", ""))
