"""rule drafts: versions saved without activating them, who saved each version, test cases of rules

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMNs on both databases: the table is not rebuilt, so it keeps its AUTOINCREMENT
    op.add_column("rule_versions", sa.Column("activated_at", sa.DateTime(), nullable=True))
    op.add_column("rule_versions", sa.Column("actor", sa.String(length=255), nullable=True))
    # until now every version was activated as it was saved: none of them is a draft
    op.execute("UPDATE rule_versions SET activated_at = created_at")
    op.create_table(
        "rule_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "contact", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("timeline", sa.Text(), nullable=False),
        sa.Column(
            "expected", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column(
            "report", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("run_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["rules.id"], name=op.f("fk_rule_tests_rule_id_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_tests")),
        sa.UniqueConstraint("rule_id", "name", name=op.f("uq_rule_tests_rule_id")),
        sqlite_autoincrement=True,  # ids are never reused (see 0008)
    )


def downgrade() -> None:
    op.drop_table("rule_tests")
    with op.batch_alter_table("rule_versions", schema=None) as batch_op:
        batch_op.drop_column("actor")
        batch_op.drop_column("activated_at")
