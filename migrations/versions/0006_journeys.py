"""journeys

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("pc", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("due", sa.BigInteger(), nullable=True),
        sa.Column("wait_event", sa.String(length=128), nullable=True),
        sa.Column("entered", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("exit_reason", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
    )
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.create_index("ix_enrolments_contact_rule", ["contact_id", "rule_id"], unique=False)
        batch_op.create_index(
            "ix_enrolments_due",
            ["due"],
            unique=False,
            postgresql_where=sa.text("state = 0"),
            sqlite_where=sa.text("state = 0"),
        )

    op.create_table(
        "journey_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enrolment_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_log")),
    )
    with op.batch_alter_table("journey_log", schema=None) as batch_op:
        batch_op.create_index("ix_journey_log_contact", ["contact_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_journey_log_enrolment_id"), ["enrolment_id"], unique=False)

    op.create_table(
        "rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active_version_id", sa.Integer(), nullable=True),
        sa.Column("origin", sa.String(length=1024), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_rules_name")),
    )
    op.create_table(
        "schedule_timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("due", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_timers")),
        sa.UniqueConstraint("rule_id", "timezone", name=op.f("uq_schedule_timers_rule_id")),
    )
    with op.batch_alter_table("schedule_timers", schema=None) as batch_op:
        batch_op.create_index("ix_schedule_timers_due", ["due"], unique=False)

    op.create_table(
        "trigger_timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("due", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_timers")),
        sa.UniqueConstraint("rule_id", "contact_id", name=op.f("uq_trigger_timers_rule_id")),
    )
    with op.batch_alter_table("trigger_timers", schema=None) as batch_op:
        batch_op.create_index("ix_trigger_timers_due", ["due"], unique=False)

    op.create_table(
        "rule_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "plan", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["rules.id"], name=op.f("fk_rule_versions_rule_id_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_versions")),
        sa.UniqueConstraint("rule_id", "number", name=op.f("uq_rule_versions_rule_id")),
    )


def downgrade() -> None:

    op.drop_table("rule_versions")
    with op.batch_alter_table("trigger_timers", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_timers_due")

    op.drop_table("trigger_timers")
    with op.batch_alter_table("schedule_timers", schema=None) as batch_op:
        batch_op.drop_index("ix_schedule_timers_due")

    op.drop_table("schedule_timers")
    op.drop_table("rules")
    with op.batch_alter_table("journey_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_log_enrolment_id"))
        batch_op.drop_index("ix_journey_log_contact")

    op.drop_table("journey_log")
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_enrolments_due", postgresql_where=sa.text("state = 0"), sqlite_where=sa.text("state = 0")
        )
        batch_op.drop_index("ix_enrolments_contact_rule")

    op.drop_table("enrolments")
