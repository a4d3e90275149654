"""auto-winner splits: each test's state and winner, and every contact's assignment

Revision ID: 0030
Revises: 0025
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0030"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "split_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("winner", sa.String(length=2), nullable=True),
        sa.Column("declared_at", sa.BigInteger(), nullable=True),
        sa.Column("declared_by", sa.String(length=64), nullable=True),
        sa.Column(
            "evidence", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["rules.id"], name=op.f("fk_split_tests_rule_id_rules"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_tests")),
        sa.UniqueConstraint("rule_id", "step_id", name=op.f("uq_split_tests_rule_id")),
        sqlite_autoincrement=True,  # ids are never reused (see 0008)
    )
    op.create_table(
        "split_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=2), nullable=False),
        sa.Column("assigned_at", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("decided", sa.Boolean(), nullable=False),
        sa.Column("outcome_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["test_id"], ["split_tests.id"], name=op.f("fk_split_assignments_test_id_split_tests"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_split_assignments_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_assignments")),
        sqlite_autoincrement=True,
    )
    # a test's undecided assignments, oldest deadline first
    op.create_index("ix_split_assignments_open", "split_assignments", ["test_id", "decided", "deadline"], unique=False)
    op.create_index("ix_split_assignments_contact_id", "split_assignments", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_split_assignments_contact_id", table_name="split_assignments")
    op.drop_index("ix_split_assignments_open", table_name="split_assignments")
    op.drop_table("split_assignments")
    op.drop_table("split_tests")
