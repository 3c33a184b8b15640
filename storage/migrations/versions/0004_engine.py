"""The engine: failed events counted (bounded retries), card copies remember what they show.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "event_failures",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "event_id", name=op.f("pk_event_failures")),
    )
    op.create_index(op.f("ix_event_failures_last_at"), "event_failures", ["last_at"], unique=False)
    with op.batch_alter_table("message_ledger") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("message_ledger") as batch:
        batch.drop_column("content_hash")
    op.drop_index(op.f("ix_event_failures_last_at"), table_name="event_failures")
    op.drop_table("event_failures")
