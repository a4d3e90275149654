"""contacts: on PostgreSQL, pages filled to 70% so that moving last_seen or the score rewrites no index

The engine rewrites a contact's row for most events it processes (``last_seen``; a score step moves ``score`` in
the same rewrite), and neither column is indexed. PostgreSQL writes such an update as a heap-only tuple (no new
entry in any of the contact's seven indexes) only when the new version fits on the row's own page; filled to
100%, nearly none did (0.2% of the rewrites in ``bench_events``), filled to 70% about half do, the first time
as the later ones (a page's old versions are pruned as it is read). Two workers on PostgreSQL processed 3–7%
more events a second in alternated pairs; the table's pages take ~40% more room. Pages written before this
keep their packing until the table is rewritten (``VACUUM FULL``). SQLite has no such setting.

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-01
"""

from alembic import op

revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None

#: the same figure as the model's (server/models/contacts.py)
FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE contacts SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE contacts RESET (fillfactor)")
