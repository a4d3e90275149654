"""idempotency_keys: no index on created_at

Nothing reads the stored answers by their time: a retry finds its answer by the unique (API key, key) index, and
the retention cleanup walks the table by id, stopping at the first answer younger than the cut-off. The index only
cost every request sent with an ``Idempotency-Key`` one more B-tree insert in the ingest's write turn.

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-03
"""

from alembic import op

revision = "0047"
down_revision = "0046"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")


def downgrade() -> None:
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], unique=False)
