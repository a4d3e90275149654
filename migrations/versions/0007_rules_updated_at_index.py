"""index rules.updated_at for the engine's cheap change check

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rules_updated_at", "rules", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_rules_updated_at", table_name="rules")
