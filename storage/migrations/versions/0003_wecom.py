"""WeCom: kf sessions (send budget, hand-over), sent kf messages, app cards and their response codes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


FANOUT_TABLES = ("outbox", "message_ledger")  # their chat_id holds "u1|u2|…" for one WeCom card to many


def upgrade() -> None:
    """Upgrade schema."""
    for table in FANOUT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("chat_id", existing_type=sa.String(length=128), type_=sa.String(length=2000),
                               existing_nullable=False)
    op.create_table(
        "wecom_kf_sessions",
        sa.Column("external_userid", sa.String(length=128), nullable=False),
        sa.Column("open_kfid", sa.String(length=64), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(), nullable=True),
        sa.Column("sent_since_inbound", sa.Integer(), nullable=False),
        sa.Column("servicer", sa.String(length=64), nullable=True),
        sa.Column("send_failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("external_userid", name=op.f("pk_wecom_kf_sessions")),
    )
    op.create_table(
        "wecom_kf_sent",
        sa.Column("msgid", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("msgid", name=op.f("pk_wecom_kf_sent")),
    )
    op.create_index(op.f("ix_wecom_kf_sent_sent_at"), "wecom_kf_sent", ["sent_at"], unique=False)
    op.create_table(
        "wecom_cards",
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_wecom_cards")),
    )
    op.create_table(
        "wecom_response_codes",
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_wecom_response_codes")),
    )
    op.create_index(op.f("ix_wecom_response_codes_task_id"), "wecom_response_codes", ["task_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_wecom_response_codes_task_id"), table_name="wecom_response_codes")
    op.drop_table("wecom_response_codes")
    op.drop_table("wecom_cards")
    op.drop_index(op.f("ix_wecom_kf_sent_sent_at"), table_name="wecom_kf_sent")
    op.drop_table("wecom_kf_sent")
    op.drop_table("wecom_kf_sessions")
    for table in FANOUT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("chat_id", existing_type=sa.String(length=2000), type_=sa.String(length=128),
                               existing_nullable=False)
