"""form_submissions: a double opt-in sign-up's changes to an existing contact, held until it is confirmed

A public form proves nothing about who posts it. A sign-up through a double opt-in form overwrote an existing
contact's attributes (name, phone…) and added the form's tags at once, before anyone proved the address was
theirs. Those changes are held on the submission now and made when the confirmation link is used (NULL: none).

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0046"
down_revision = "0045"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.add_column("form_submissions", sa.Column("held", json_type, nullable=True))


def downgrade() -> None:
    op.drop_column("form_submissions", "held")
