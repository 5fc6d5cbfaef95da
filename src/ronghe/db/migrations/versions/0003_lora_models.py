"""lora models

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:34:14.187869
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronghe.db.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "lora_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("base_model", sa.String(length=128), nullable=False),
        sa.Column("trigger_word", sa.String(length=256), nullable=False),
        sa.Column("main_body", sa.String(length=32), nullable=False),
        sa.Column("nsfw", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("weights_key", sa.String(length=512), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("demo_file_id", sa.String(length=36), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("created_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_lora_models_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lora_models")),
        sa.UniqueConstraint("user_id", "name", name="uq_lora_models_user_name"),
    )
    with op.batch_alter_table("lora_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lora_models_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lora_models_user_id"), ["user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("lora_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lora_models_user_id"))
        batch_op.drop_index(batch_op.f("ix_lora_models_task_id"))

    op.drop_table("lora_models")
