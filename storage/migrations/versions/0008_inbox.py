"""The inbox: updates taken on from a platform but not yet handled (durable before the 2xx answer).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-17

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("lane", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("channel", "event_id", name="uq_inbox_event"),
    )
    op.create_index("ix_inbox_holder", "inbox", ["holder"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_inbox_holder", table_name="inbox")
    op.drop_table("inbox")
