"""Pulls on a server, apart from HTTP: a request checked into a ``download`` task, the list
of pulls, cancel.  Admins only (the API checks that): a pull writes the server's models
folder, which every user's images are drawn with.

The task (``ronghe.tasks.downloads``) runs on the API process's own download worker
(``jobs.make_dispatcher``), one pull at a time, so an hour-long download never holds up
image tasks; it survives a restart: the recovered task pulls again and the staging folder's
partial files make that a resume.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ronghe.db.models import User
from ronghe.downloads import catalogue
from ronghe.downloads.install import Places, installed_entries, sidecar_of
from ronghe.downloads.pull import PullRequest
from ronghe.errors import BadRequest, Conflict
from ronghe.jobs.models import Task
from ronghe.jobs.status import Status
from ronghe.jobs.store import TaskView
from ronghe.queues import Kind, Queue
from ronghe.services import Services

ACTIVE = (Status.PENDING, Status.RUNNING)


def places(services: Services) -> Places:
    settings = services.settings
    return Places(settings.data_dir, settings.models_path, settings.loras_path)


class Downloads:
    def __init__(self, services: Services) -> None:
        self.services = services

    def submit(self, user_id: int, *, ref: str, revision: str | None = None,
               file: str | None = None, name: str | None = None, kind: str | None = None,
               sha256: str | None = None, allow_pickle: bool = False) -> TaskView:
        request = PullRequest(ref, revision, file, name, kind, sha256, allow_pickle).check()
        for task in self.list(limit=100):
            if task.state in ACTIVE and PullRequest.from_params(task.params) == request:
                raise Conflict(f"ref: a pull of {request.ref!r} is already "
                               f"{task.state.value} (task {task.id})", field="ref")
        entry = catalogue.find(request.ref)
        if entry is not None and not request.name:
            self._check_free(entry.name, entry.kind, entry.folder, request.ref)
        task = self.services.tasks.create(user_id, Kind.DOWNLOAD.value, Queue.DOWNLOADS.value,
                                          request.to_params())
        assert self.services.dispatcher is not None  # the app sets it before serving
        self.services.dispatcher.submit(task)
        return task

    def _check_free(self, name: str, kind: str, folder: bool, ref: str) -> None:
        """A catalogue name already taken by another model: say so now, not after the
        download's resolution (the same pull done before is fine: it finishes at once)."""
        root = places(self.services).root(kind)
        candidates = [root / name] if folder else list(root.glob(f"{name}.*"))
        for path in candidates:
            if path.name.endswith(".json") or not path.exists():
                continue
            meta = _json(sidecar_of(path))
            if (meta.get("source") or {}).get("ref") != ref:
                raise Conflict(f"name: a model named {name!r} exists already ({path.name}); "
                               "give the pull another name", field="name")

    def list(self, limit: int = 50) -> list[TaskView]:
        """Every admin's pulls, newest first (only admins start them)."""
        with self.services.db.session() as s:
            admins = list(s.scalars(select(User.id).where(User.is_admin.is_(True))))
            rows = s.scalars(select(Task).where(Task.user_id.in_(admins),
                                                Task.kind == Kind.DOWNLOAD.value)
                             .order_by(Task.created_at.desc()).limit(limit))
            return [TaskView.of(t) for t in rows]

    def cancel(self, task_id: str) -> TaskView:
        """Any admin may stop any pull; its partial files go (a stopping server keeps them)."""
        task = self.services.tasks.get(task_id)
        if task.kind != Kind.DOWNLOAD.value:
            raise BadRequest(f"task_id: task {task_id!r} is not a model pull",
                             field="task_id")
        return self.services.tasks.request_cancel(task.id, task.user_id)

    def installed(self) -> dict[str, dict[str, Any]]:
        """Catalogue name -> where it is installed and its size on disk, for those that are."""
        return installed_entries(places(self.services))


def _json(path: Any) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
