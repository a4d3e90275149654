"""user roles (admin / editor / viewer) and disabled accounts

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMNs on both databases: the table is not rebuilt, so it keeps its AUTOINCREMENT
    op.add_column("users", sa.Column("role", sa.String(length=16), nullable=False, server_default="viewer"))
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(), nullable=True))
    # every user so far could do everything: they stay admins; rows made from now on start as viewers
    op.execute("UPDATE users SET role = 'admin'")


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("role")
