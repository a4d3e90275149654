"""provider_receipts: provider reports already handled, so a replayed callback changes nothing

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("receipt", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_receipts")),
        sa.UniqueConstraint("channel", "receipt", name=op.f("uq_provider_receipts_channel")),
        sqlite_autoincrement=True,  # ids are never reused (see 0008)
    )


def downgrade() -> None:
    op.drop_table("provider_receipts")
