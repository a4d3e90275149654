"""events: on PostgreSQL, the unprocessed-events index holds the pending events only

``ix_events_unprocessed`` (processed_at, received_at) had an entry for every event. Its readers (the claims,
the scheduler's sweep, health, the stuck list) all ask for pending events (``processed_at IS NULL``). Partial on
PostgreSQL, a claimed event's new row version gets no entry in it (the claim writes one index entry fewer an
event), nor does an event Nudge raises already processed (``tag.added``, ``score.changed``), and the claims read
a small index instead of one that grows with every event kept. SQLite keeps the full index: there a partial
one wrote as many pages on ingest and was dropped (README, "Performance").

Revision ID: 0042
Revises: 0041
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None

#: the same text as the model's (server/models/events.py)
PENDING_ROWS = "processed_at IS NULL"
COLUMNS = ["processed_at", "received_at"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_events_unprocessed", table_name="events")
    op.create_index("ix_events_unprocessed", "events", COLUMNS, unique=False, postgresql_where=sa.text(PENDING_ROWS))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_events_unprocessed", table_name="events")
    op.create_index("ix_events_unprocessed", "events", COLUMNS, unique=False)
