"""form_submissions: the sign-up's tracking extras (``utm_*``), kept until it is confirmed

A double opt-in sign-up's ``form.submitted`` event is recorded when the person confirms, from another request:
the ``utm_*`` fields the form carried were gone by then, so the event had none (a single opt-in's had them).
They are kept on the submission now (NULL: none, or a submission made before this migration).

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.add_column("form_submissions", sa.Column("extra", json_type, nullable=True))


def downgrade() -> None:
    op.drop_column("form_submissions", "extra")
