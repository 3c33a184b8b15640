"""The resident's rights: privacy notice acceptance and erasure on people, the audit trail of reveals of
personal data, files (documents) in the simulator's chat log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("privacy_accepted_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("subject_person_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_request_id"), "audit_log", ["request_id"], unique=False)
    op.create_index(op.f("ix_audit_log_subject_person_id"), "audit_log", ["subject_person_id"], unique=False)
    with op.batch_alter_table("sim_messages") as batch:
        batch.add_column(sa.Column("document", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("sim_messages") as batch:
        batch.drop_column("document")
    op.drop_index(op.f("ix_audit_log_subject_person_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_request_id"), table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("privacy_accepted_at")
