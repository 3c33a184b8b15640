"""Idempotent delivery: the simulator's chat log remembers which outbox row each bot message came from.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("sim_messages") as batch:
        batch.add_column(sa.Column("delivery_key", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_sim_messages_delivery_key"), "sim_messages", ["delivery_key"], unique=True)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_sim_messages_delivery_key"), table_name="sim_messages")
    with op.batch_alter_table("sim_messages") as batch:
        batch.drop_column("delivery_key")
