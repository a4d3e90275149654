"""failed work is retried and parked, never marked done; sends are stamped when handed to the channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN on both databases: instant on a large table, existing rows read as "never failed"
    op.add_column("events", sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False))
    op.add_column("events", sa.Column("retry_at", sa.DateTime(), nullable=True))
    op.add_column("events", sa.Column("error", sa.Text(), nullable=True))
    op.add_column("events", sa.Column("parked_at", sa.DateTime(), nullable=True))
    op.add_column("enrolments", sa.Column("attempts", sa.SmallInteger(), nullable=True))
    op.add_column("enrolments", sa.Column("error", sa.Text(), nullable=True))
    op.create_index(
        "ix_enrolments_failing",
        "enrolments",
        ["id"],
        unique=False,
        postgresql_where=sa.text("error IS NOT NULL"),
        sqlite_where=sa.text("error IS NOT NULL"),
    )
    op.add_column("messages", sa.Column("sending_at", sa.DateTime(), nullable=True))
    op.create_table(
        "channel_health",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_health")),
    )
    # rows left "sending" by an older version were claimed before any stamp existed: the provider may have
    # them, so they keep the old meaning (handed over) and become "unknown" as before, never resent blindly
    op.execute("UPDATE messages SET sending_at = claimed_at WHERE status = 'sending'")


def downgrade() -> None:
    op.drop_table("channel_health")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("sending_at")
    op.execute("UPDATE enrolments SET state = 0 WHERE state = 4")  # parked: an older version retries it
    op.drop_index("ix_enrolments_failing", table_name="enrolments")
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("attempts")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("parked_at")
        batch_op.drop_column("error")
        batch_op.drop_column("retry_at")
        batch_op.drop_column("attempts")
