"""tasks: fair_key and the indexes of the fair pick, the cap and the rate limit;
login_failures: the login throttle's counters, shared by every API process

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-01 20:40:00

Existing pending tasks get fair_key 0, so they keep their first-come order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ronghe.db.base

revision = "0006"
# Chained after 0007 (branch webapi, merged here) so this branch has one head; the rate
# limit uses 0007's ix_tasks_user_created.
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("fair_key", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.create_index("ix_tasks_state_fair", ["state", "fair_key", "created_at"])
        batch.create_index("ix_tasks_state_queue_fair",
                           ["state", "queue", "fair_key", "created_at"])
        batch.create_index("ix_tasks_user_state_fair", ["user_id", "state", "fair_key"])
    op.create_table(
        "login_failures",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", ronghe.db.base.UTCDateTime(), nullable=False),
        sa.Column("locked_until", ronghe.db.base.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures") as batch:
        batch.create_index(batch.f("ix_login_failures_last_failure_at"), ["last_failure_at"])


def downgrade() -> None:
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_index(batch.f("ix_login_failures_last_failure_at"))
    op.drop_table("login_failures")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_user_state_fair")
        batch.drop_index("ix_tasks_state_queue_fair")
        batch.drop_index("ix_tasks_state_fair")
        batch.drop_column("fair_key")
