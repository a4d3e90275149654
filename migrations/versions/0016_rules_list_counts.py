"""admin UI: an index for the rules list's figures (contacts in each rule now, entered and completed lately)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # each rule's counts read one range of this index (no table rows): a full scan of every enrolment before
    op.create_index("ix_enrolments_rule_state", "enrolments", ["rule_id", "state", "entered", "finished"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_enrolments_rule_state", table_name="enrolments")
