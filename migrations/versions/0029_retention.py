"""retention: an index of the events that started journeys still in flight (the cleanup keeps those events)

Revision ID: 0029
Revises: 0025
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

#: the journeys in flight (active, held, parked): the same text as the model's index and the cleanup's query
IN_FLIGHT = "state IN (0, 3, 4) AND event_id IS NOT NULL"


def upgrade() -> None:
    # only journeys in flight that an event started: small, and without it each cleanup batch read every journey
    op.create_index(
        "ix_enrolments_event_in_flight",
        "enrolments",
        ["event_id"],
        unique=False,
        postgresql_where=sa.text(IN_FLIGHT),
        sqlite_where=sa.text(IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index("ix_enrolments_event_in_flight", table_name="enrolments")
