"""Crisis cases: a person at risk is a case with a state and a history, not a message.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "crisis_cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resident_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("trigger_text", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("assignee_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["people.id"], name=op.f("fk_crisis_cases_resident_id_people")),
        sa.ForeignKeyConstraint(["assignee_id"], ["people.id"], name=op.f("fk_crisis_cases_assignee_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crisis_cases")),
    )
    op.create_index(op.f("ix_crisis_cases_status"), "crisis_cases", ["status"], unique=False)
    op.create_index(op.f("ix_crisis_cases_resident_id"), "crisis_cases", ["resident_id"], unique=False)
    op.create_table(
        "crisis_case_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["crisis_cases.id"],
                                name=op.f("fk_crisis_case_history_case_id_crisis_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crisis_case_history")),
    )
    op.create_index(op.f("ix_crisis_case_history_case_id"), "crisis_case_history", ["case_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_crisis_case_history_case_id"), table_name="crisis_case_history")
    op.drop_table("crisis_case_history")
    op.drop_index(op.f("ix_crisis_cases_resident_id"), table_name="crisis_cases")
    op.drop_index(op.f("ix_crisis_cases_status"), table_name="crisis_cases")
    op.drop_table("crisis_cases")
