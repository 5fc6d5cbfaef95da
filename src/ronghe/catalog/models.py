from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from ronghe.db.base import Base, UTCDateTime, utcnow


class LoraModel(Base):
    """A LoRA owned by one user.  ``id`` doubles as the public ``versionid``/``model_id``."""

    __tablename__ = "lora_models"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_lora_models_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    # The image model (registry name) it was trained on and must be applied to.
    base_model: Mapped[str] = mapped_column(String(128))
    trigger_word: Mapped[str] = mapped_column(String(256), default="")
    main_body: Mapped[str] = mapped_column(String(32), default="Style")
    nsfw: Mapped[bool] = mapped_column(default=False)
    # Listed by /models/lora and usable by every user in lora_configs (``ronghe lora publish``).
    public: Mapped[bool] = mapped_column(default=False, server_default=false(), index=True)
    # training | ready | failed | cancelled — only ready models can be used.
    state: Mapped[str] = mapped_column(String(16), default="training")
    # Storage key prefix under which the weights (diffusers/PEFT, kohya, sidecar) live.
    weights_key: Mapped[str] = mapped_column(String(512), default="")
    # The training task that produces it, if any.
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    demo_file_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
