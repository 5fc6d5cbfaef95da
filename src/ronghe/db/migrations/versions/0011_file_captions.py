"""file captions: users' own captions and cached automatic ones

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronghe.db.base

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_captions",
        sa.Column("file_id", sa.String(length=36), nullable=False),
        sa.Column("user_caption", sa.Text(), nullable=True),
        sa.Column("auto_caption", sa.Text(), nullable=True),
        sa.Column("auto_by", sa.String(length=512), nullable=True),
        sa.Column("updated_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"],
                                name=op.f("fk_file_captions_file_id_files"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_file_captions")),
    )


def downgrade() -> None:
    op.drop_table("file_captions")
