"""The tasks table: the single source of truth for every image and training job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ronghe.db.base import Base, UTCDateTime, new_uuid, utcnow


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # A queue's pending tasks, oldest first (wait_time counts those ahead, index-only).
        Index("ix_tasks_state_queue_created", "state", "queue", "created_at", "id"),
        # task_list: one user's tasks (of a kind), newest first, in index
        # order (id breaks ties), so a page never sorts the user's history; the trailing
        # state lets the count and a page's ids (state filter included) come from the
        # index alone (ronghe.jobs.paging).
        # ix_tasks_user_created also serves the submit rate limit (a user's recent submits).
        Index("ix_tasks_user_kind_created", "user_id", "kind", "created_at", "id", "state"),
        Index("ix_tasks_user_created", "user_id", "created_at", "id", "state"),
        # The fair pick: pending tasks in fair_key order, across all queues or in one.
        Index("ix_tasks_state_fair", "state", "fair_key", "created_at"),
        Index("ix_tasks_state_queue_fair", "state", "queue", "fair_key", "created_at"),
        # A user's pending tasks (the pending cap).
        Index("ix_tasks_user_state_fair", "user_id", "state", "fair_key"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # What runs it ("image", "train"), and which workers may take it.
    kind: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_msg: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # Free-form live status a handler reports (step, loss, eta …).
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Round-robin order over users (see TaskStore.create): pending tasks run lowest first.
    fair_key: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
