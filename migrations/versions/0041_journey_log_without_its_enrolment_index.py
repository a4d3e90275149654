"""journey_log: the index of enrolment ids dropped; a journey's lines are found through its contact

Every trace line had an entry in ``ix_journey_log_enrolment_id`` (~13 bytes a line). Its readers (the stats
rollup's look-ups of a journey's older lines and split arm, the best-time check of a journey's last wait) now
give the journey's contact as well and go through ``ix_journey_log_contact`` (contact, time), the enrolment id a
filter on that contact's few lines. On PostgreSQL the planner picks that index once the table has statistics
(autovacuum analyses it after a burst): measured at 1,500,000 lines, ~7-11 ms a look-up of 1,000 journeys against
~3 ms through the old index; before the first analyse it reads the older lines by id instead (~0.3-0.6 s).

Revision ID: 0041
Revises: 0040
Create Date: 2026-11-30
"""

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_journey_log_enrolment_id", table_name="journey_log")


def downgrade() -> None:
    op.create_index("ix_journey_log_enrolment_id", "journey_log", ["enrolment_id"], unique=False)
