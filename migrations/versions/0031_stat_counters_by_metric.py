"""stats: an index of the counters by metric and day, for the instance-wide reads (dashboard, results list)

Revision ID: 0031
Revises: 0029
Create Date: 2026-11-29
"""

from alembic import op

revision = "0031"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # covering (rule_id, count): the overview and the per-rule totals read the index alone, never the table
    op.create_index("ix_stat_counters_metric_day", "stat_counters", ["metric", "day", "rule_id", "count"])


def downgrade() -> None:
    op.drop_index("ix_stat_counters_metric_day", table_name="stat_counters")
