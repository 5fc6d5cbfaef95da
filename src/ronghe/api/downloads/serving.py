"""The answers of the model-pull endpoints: a pull task, the catalogue, as response models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from ronghe.api.downloads.protocol import CatalogueItem, PullInfo
from ronghe.api.images.listing import stamp
from ronghe.db.models import User
from ronghe.downloads import catalogue
from ronghe.jobs.store import TaskView
from ronghe.services import Services


def emails(services: Services, user_ids: Iterable[int]) -> dict[int, str]:
    ids = set(user_ids)
    if not ids:
        return {}
    with services.db.session() as s:
        rows = s.execute(select(User.id, User.email).where(User.id.in_(ids))).all()
        return {int(user_id): str(email) for user_id, email in rows}


def pull_info(task: TaskView, email: str) -> PullInfo:
    detail: dict[str, Any] = task.detail or {}
    result = task.result if task.state.value == "done" else None
    params = task.params
    name = (result or {}).get("name") or params.get("name") or detail.get("name") or ""
    total = detail.get("bytes_total")
    return PullInfo(
        task_id=task.id, state=task.state.value, progress=round(task.progress, 4),
        ref=str(params.get("ref", "")), name=str(name), email=email,
        phase=str(detail.get("phase", "")), file=str(detail.get("file", "")),
        bytes_done=int(detail.get("bytes_done") or 0),
        bytes_total=int(total) if isinstance(total, int | float) else None,
        speed=detail.get("speed"), eta_seconds=detail.get("eta_seconds"),
        notes=[str(n) for n in detail.get("notes") or []], error_msg=task.error_msg,
        result=result, create_time=stamp(task.created_at))


def download_answer(services: Services, task: TaskView, base_url: str) -> dict[str, Any]:
    """What task_events sends for a pull (the pull's owner, an admin, reads it)."""
    email = emails(services, [task.user_id]).get(task.user_id, "")
    return {"kind": task.kind, **pull_info(task, email).model_dump(mode="json")}


def catalogue_items(installed: dict[str, dict[str, Any]]) -> list[CatalogueItem]:
    items = []
    for entry in catalogue.ENTRIES:
        where = installed.get(entry.name)
        items.append(CatalogueItem(**entry.describe(), installed=where is not None,
                                   installed_bytes=where["bytes"] if where else None))
    return items
