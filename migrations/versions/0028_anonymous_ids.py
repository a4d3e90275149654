"""Segment-compatible ingest: anonymous ids (anonymousId) and the contact each belongs to

Revision ID: 0028
Revises: 0025
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "anonymous_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("anonymous_id", sa.String(length=255), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_anonymous_ids_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anonymous_ids")),
        sa.UniqueConstraint("anonymous_id", name=op.f("uq_anonymous_ids_anonymous_id")),
        sqlite_autoincrement=True,  # ids are never reused (see 0008)
    )
    op.create_index("ix_anonymous_ids_contact_id", "anonymous_ids", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_anonymous_ids_contact_id", table_name="anonymous_ids")
    op.drop_table("anonymous_ids")
