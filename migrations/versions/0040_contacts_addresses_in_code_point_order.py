"""contacts: email and phone in PostgreSQL's "C" collation, so a prefix search is one index range

The admin UI's contact search finds addresses by prefix with keyset pages. SQLite orders text by code point,
so ``email >= 'ana' AND email < 'ana' || U+10FFFF`` is one range of the email index. PostgreSQL ordered them
by the database's locale, where no such range is safe, and the search scanned the index from the prefix to
its end. In the "C" collation (code point order) the same range is exact and indexed. SQLite: nothing to do.

Revision ID: 0040
Revises: 0034
Create Date: 2026-11-29
"""

from alembic import op

revision = "0040"
down_revision = "0034"
branch_labels = None
depends_on = None

COLUMNS = (("email", 320), ("phone", 32))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, length in COLUMNS:
        op.execute(f'ALTER TABLE contacts ALTER COLUMN {name} TYPE VARCHAR({length}) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, length in COLUMNS:
        op.execute(f'ALTER TABLE contacts ALTER COLUMN {name} TYPE VARCHAR({length}) COLLATE "default"')
