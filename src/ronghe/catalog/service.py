"""The LoRA catalog: training writes entries, generation resolves names and version ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError

from ronghe.catalog.models import LoraModel
from ronghe.db import Database
from ronghe.db.base import MAX_ID
from ronghe.errors import BadRequest, Conflict, NotFound, UnknownModel


class LoraState(StrEnum):
    """A LoRA's life: training -> ready | failed | cancelled (a failed or cancelled entry
    gives its name up to the next train_submit)."""

    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


def is_id(value: object) -> bool:
    """Whether a versionid names a model by id: an integer, or ASCII digits, in the id range."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


@dataclass(frozen=True)
class LoraInfo:
    id: int
    user_id: int
    name: str
    description: str
    base_model: str
    trigger_word: str
    main_body: str
    nsfw: bool
    state: str
    weights_key: str
    task_id: str | None
    demo_file_id: str | None
    meta: dict[str, Any]
    created_at: datetime
    public: bool

    @classmethod
    def of(cls, m: LoraModel) -> LoraInfo:
        return cls(m.id, m.user_id, m.name, m.description, m.base_model, m.trigger_word,
                   m.main_body, m.nsfw, m.state, m.weights_key, m.task_id, m.demo_file_id,
                   dict(m.meta or {}), m.created_at, bool(m.public))


class LoraCatalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, user_id: int, name: str, base_model: str, *, description: str = "",
               trigger_word: str = "", main_body: str = "Style", nsfw: bool = False,
               task_id: str | None = None, state: str = LoraState.TRAINING.value) -> LoraInfo:
        row = LoraModel(user_id=user_id, name=name, base_model=base_model,
                        description=description, trigger_word=trigger_word,
                        main_body=main_body, nsfw=nsfw, task_id=task_id, state=state)
        try:
            with self.db.session() as s:
                s.add(row)
                s.flush()
                return LoraInfo.of(row)
        except IntegrityError:
            raise Conflict(f"name: you already have a model named {name!r}",
                           field="name") from None

    def update(self, lora_id: int, **values: Any) -> LoraInfo:
        with self.db.session() as s:
            row = s.get(LoraModel, lora_id)
            if row is None:
                raise NotFound(f"model {lora_id} not found")
            for key, value in values.items():
                setattr(row, key, value)
            s.flush()
            return LoraInfo.of(row)

    def delete(self, lora_id: int) -> None:
        with self.db.session() as s:
            row = s.get(LoraModel, lora_id)
            if row is not None:
                s.delete(row)

    def get(self, lora_id: int, user_id: int | None = None) -> LoraInfo:
        if not 0 < lora_id <= MAX_ID:
            raise NotFound(f"model {lora_id} not found")
        with self.db.session() as s:
            row = s.get(LoraModel, lora_id)
            if row is None or (user_id is not None and row.user_id != user_id):
                raise NotFound(f"model {lora_id} not found")
            return LoraInfo.of(row)

    def by_task(self, task_id: str) -> LoraInfo | None:
        with self.db.session() as s:
            row = s.scalar(select(LoraModel).where(LoraModel.task_id == task_id))
            return LoraInfo.of(row) if row else None

    def find(self, user_id: int, name: str) -> LoraInfo | None:
        """A user's model by name (as task_submit's model_name uses it)."""
        with self.db.session() as s:
            row = s.scalar(select(LoraModel).where(LoraModel.user_id == user_id,
                                                   LoraModel.name == name))
            return LoraInfo.of(row) if row else None

    def resolve_version(self, user_id: int, versionid: object, field: str) -> LoraInfo:
        """A ready LoRA of this user by versionid (its id, or its name)."""
        info: LoraInfo | None = None
        if is_id(versionid):
            try:
                info = self.get(int(versionid), user_id)
            except NotFound:
                info = None
        if info is None and isinstance(versionid, str):
            info = self.find(user_id, versionid)
        if info is None:
            raise UnknownModel(f"{field}: no model of yours with versionid {versionid!r}",
                               field=field)
        if info.state != LoraState.READY:
            raise BadRequest(f"{field}: model {info.name!r} is not ready (state {info.state})",
                             field=field)
        return info

    def list(self, user_id: int | None, query: str = "", offset: int = 0, limit: int = 20,
             ready_only: bool = True) -> tuple[list[LoraInfo], int]:
        """A user's LoRAs (every user's with ``user_id=None``), newest first."""
        q = select(LoraModel)
        if user_id is not None:
            q = q.where(LoraModel.user_id == user_id)
        if ready_only:
            q = q.where(LoraModel.state == LoraState.READY.value)
        return self._page(q, query, offset, limit)

    def list_public(self, query: str = "", offset: int = 0,
                    limit: int = 20) -> tuple[list[LoraInfo], int]:
        """Ready LoRAs marked public, newest first, whoever owns them."""
        q = select(LoraModel).where(LoraModel.public.is_(True),
                                    LoraModel.state == LoraState.READY.value)
        return self._page(q, query, offset, limit)

    def set_public(self, lora_id: int, public: bool) -> LoraInfo:
        return self.update(lora_id, public=public)

    def _page(self, q: Select[tuple[LoraModel]], query: str, offset: int,
              limit: int) -> tuple[list[LoraInfo], int]:
        if query:
            like = f"%{query.lower()}%"
            q = q.where(or_(func.lower(LoraModel.name).like(like),
                            func.lower(LoraModel.description).like(like),
                            func.lower(LoraModel.trigger_word).like(like)))
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = s.scalars(q.order_by(LoraModel.id.desc()).offset(offset).limit(limit))
            return [LoraInfo.of(r) for r in rows], total
