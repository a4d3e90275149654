"""revenue attribution: each conversion and the message it was attributed to when it arrived

Revision ID: 0027
Revises: 0025
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attributions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("message_key", sa.String(length=255), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=255), nullable=False),
        sa.Column("touch", sa.String(length=16), nullable=False),
        sa.Column("touched_at", sa.DateTime(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("attributed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attributions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_attributions_event_id")),
        sqlite_autoincrement=True,  # ids are never reused (see 0008): the rollup reads past a watermark
    )


def downgrade() -> None:
    op.drop_table("attributions")
