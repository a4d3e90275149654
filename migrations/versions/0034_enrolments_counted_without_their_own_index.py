"""enrolments: the rules list's per-rule index split in two partial ones, smaller for the waiting journeys

The rules list counted each rule's journeys from ``ix_enrolments_rule_state`` (rule, state, entered, finished),
an entry for every journey. The active ones (most of them waiting) now have ``ix_enrolments_rule_active`` (rule,
entered, state: no finish time), and ``ix_enrolments_rule_state`` keeps only the others (done, exited, held,
parked).

Revision ID: 0034
Revises: 0031
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0031"
branch_labels = None
depends_on = None

#: the same texts as the model's (server/models/journeys.py)
ACTIVE_ROWS = "state = 0"
NOT_ACTIVE_ROWS = "state <> 0"


def upgrade() -> None:
    op.create_index(
        "ix_enrolments_rule_active",
        "enrolments",
        ["rule_id", "entered", "state"],
        unique=False,
        postgresql_where=sa.text(ACTIVE_ROWS),
        sqlite_where=sa.text(ACTIVE_ROWS),
    )
    op.drop_index("ix_enrolments_rule_state", table_name="enrolments")
    op.create_index(
        "ix_enrolments_rule_state",
        "enrolments",
        ["rule_id", "state", "entered", "finished"],
        unique=False,
        postgresql_where=sa.text(NOT_ACTIVE_ROWS),
        sqlite_where=sa.text(NOT_ACTIVE_ROWS),
    )


def downgrade() -> None:
    op.drop_index("ix_enrolments_rule_state", table_name="enrolments")
    op.create_index("ix_enrolments_rule_state", "enrolments", ["rule_id", "state", "entered", "finished"], unique=False)
    op.drop_index("ix_enrolments_rule_active", table_name="enrolments")
