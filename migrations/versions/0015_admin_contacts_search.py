"""admin UI: name search keys and a tag index for keyset pages of contacts; tasks assigned to users

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# the same expressions as server/models/contacts.py (NAME_KEY, LAST_NAME_KEY): a migration never imports the models
NAME_KEY = "lower(trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')))"
LAST_NAME_KEY = "lower(last_name)"


def upgrade() -> None:
    # generated columns: the database computes them on every write, whichever code path writes the names.
    # PostgreSQL needs them stored (it rewrites the table once); SQLite's ALTER TABLE adds only virtual
    # ones, which is a plain ADD COLUMN (the table keeps its AUTOINCREMENT) and indexes just the same
    stored = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "contacts", sa.Column("name_key", sa.String(length=511), sa.Computed(NAME_KEY, persisted=stored), nullable=True)
    )
    op.add_column(
        "contacts",
        sa.Column("last_name_key", sa.String(length=255), sa.Computed(LAST_NAME_KEY, persisted=stored), nullable=True),
    )
    op.create_index(op.f("ix_contacts_name_key"), "contacts", ["name_key"], unique=False)
    op.create_index(op.f("ix_contacts_last_name_key"), "contacts", ["last_name_key"], unique=False)
    # (tag, contact_id) serves what (tag) did, and a page of a tag's contacts in contact order besides
    op.create_index("ix_contact_tags_tag_contact", "contact_tags", ["tag", "contact_id"], unique=False)
    op.drop_index("ix_contact_tags_tag", table_name="contact_tags")
    # plain ADD COLUMN (no constraint: SQLite cannot add one without rebuilding the table); users are never deleted
    op.add_column("tasks", sa.Column("assigned_to", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("assigned_to")
    op.create_index("ix_contact_tags_tag", "contact_tags", ["tag"], unique=False)
    op.drop_index("ix_contact_tags_tag_contact", table_name="contact_tags")
    op.drop_index(op.f("ix_contacts_last_name_key"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_name_key"), table_name="contacts")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("last_name_key")
        batch_op.drop_column("name_key")
