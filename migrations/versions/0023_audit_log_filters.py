"""admin UI: indexes for the audit log's filters (who, what kind, when), each read newest first

Revision ID: 0023
Revises: 0017
Create Date: 2026-11-29
"""

from alembic import op

revision = "0023"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a page of one actor's or one kind's entries, newest first, is one range of these (no sort of every match)
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"], unique=False)
    op.create_index("ix_audit_log_kind", "audit_log", ["target_type", "id"], unique=False)
    # a date range finds its first and last entries without reading the rest
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_kind", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
