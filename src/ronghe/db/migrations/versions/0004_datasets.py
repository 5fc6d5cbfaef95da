"""datasets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:37:44.114736
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronghe.db.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_datasets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_datasets_user_id"), ["user_id"], unique=False)

    op.create_table(
        "dataset_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("added_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_images_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name=op.f("fk_dataset_images_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_images")),
        sa.UniqueConstraint("dataset_id", "file_id", name="uq_dataset_images_dataset_file"),
    )
    with op.batch_alter_table("dataset_images", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_images_dataset_id"), ["dataset_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_dataset_images_file_id"), ["file_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dataset_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_images_file_id"))
        batch_op.drop_index(batch_op.f("ix_dataset_images_dataset_id"))

    op.drop_table("dataset_images")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_user_id"))

    op.drop_table("datasets")
