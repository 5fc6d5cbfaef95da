"""lora models: a public flag of their own

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 12:50:00

Public LoRAs were marked by ``meta.public`` (a JSON key, so the public listing had to load
every ready LoRA and filter in Python). A boolean column lets the database filter and page.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lora_models") as batch:
        batch.add_column(sa.Column("public", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.create_index("ix_lora_models_public", ["public"])
    lora = sa.table("lora_models", sa.column("id", sa.Integer), sa.column("meta", sa.JSON),
                    sa.column("public", sa.Boolean))
    connection = op.get_bind()
    marked = [row.id for row in connection.execute(sa.select(lora.c.id, lora.c.meta))
              if isinstance(row.meta, dict) and row.meta.get("public")]
    if marked:
        connection.execute(sa.update(lora).where(lora.c.id.in_(marked)).values(public=True))


def downgrade() -> None:
    with op.batch_alter_table("lora_models") as batch:
        batch.drop_index("ix_lora_models_public")
        batch.drop_column("public")
