"""contacts: the phone index holds the contacts that have a number

``ix_contacts_phone`` had an entry for every contact, most of them NULL (an email list's contacts have no
number), and each insert of a contact wrote one. Its readers all look for numbers (``phone = ?``, ``IN``, a
prefix range; the segment condition ``contact.phone is set``), which the planners of both databases see imply
``phone IS NOT NULL``: partial, the index is as useful and an insert without a number skips it.

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None

#: the same text as the model's (server/models/contacts.py)
HAS_PHONE = "phone IS NOT NULL"


def upgrade() -> None:
    op.drop_index("ix_contacts_phone", table_name="contacts")
    where = sa.text(HAS_PHONE)
    op.create_index("ix_contacts_phone", "contacts", ["phone"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_contacts_phone", table_name="contacts")
    op.create_index("ix_contacts_phone", "contacts", ["phone"])
