"""accounts: admins, the first-run setup claim, and an index for task listings

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 20:45:00

``users.is_admin`` marks who manages accounts; ``setup_claims`` holds at most one row, the
claim of first-run setup, so two concurrent setups cannot both create an admin.
``ix_tasks_user_kind_created`` and ``ix_tasks_user_created`` serve ``task_list`` (one user's
tasks, of a kind or all, newest first, in index order).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronghe.db.base

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "setup_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_setup_claims_user_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setup_claims")),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.create_index("ix_tasks_user_kind_created", ["user_id", "kind", "created_at", "id"])
        batch.create_index("ix_tasks_user_created", ["user_id", "created_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_user_created")
        batch.drop_index("ix_tasks_user_kind_created")
    op.drop_table("setup_claims")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_admin")
