"""task_list's indexes cover the state filter; wait_time's count is index-only

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:00:00

``ix_tasks_user_kind_created`` and ``ix_tasks_user_created`` gain ``state`` as a trailing
column.  The order they give (a user's tasks, newest first) is unchanged; what changes is
that every task_list read is answered from the index alone, the state filter included: the
count, and the page's ids, which are found by OFFSET in the index and only then joined to
their rows (a deferred join), so a deep page walks index entries, not rows.
``ix_tasks_state_queue_created`` gains ``id``, the tie-break of wait_time's "pending tasks
of the queue older than this one", so that count is a range of the index.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BEFORE = {"ix_tasks_user_kind_created": ["user_id", "kind", "created_at", "id"],
          "ix_tasks_user_created": ["user_id", "created_at", "id"],
          "ix_tasks_state_queue_created": ["state", "queue", "created_at"]}
AFTER = {"ix_tasks_user_kind_created": [*BEFORE["ix_tasks_user_kind_created"], "state"],
         "ix_tasks_user_created": [*BEFORE["ix_tasks_user_created"], "state"],
         "ix_tasks_state_queue_created": [*BEFORE["ix_tasks_state_queue_created"], "id"]}


def _replace(columns: dict[str, list[str]]) -> None:
    # Dropped and built again under the same name: a new index first would make the
    # database maintain three for a moment, for nothing.
    with op.batch_alter_table("tasks") as batch:
        for name, cols in columns.items():
            batch.drop_index(name)
            batch.create_index(name, cols)


def upgrade() -> None:
    _replace(AFTER)


def downgrade() -> None:
    _replace(BEFORE)
