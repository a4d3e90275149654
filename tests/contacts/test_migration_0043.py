"""Migration 0043 on an install holding contacts: the phone index keeps the contacts that have a number only, on
both databases; searches by number (exact and by prefix, a page at a time) still find them through that index;
and it goes back down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from server.contact_search import search
from server.db import make_engine
from server.migrate import alembic_config, upgrade
from server.models import Contact
from server.models.contacts import HAS_PHONE


def _phone_index(engine) -> str | None:
    """The condition of ``ix_contacts_phone`` (None: every contact has an entry)."""
    with engine.connect() as conn:
        (index,) = [i for i in inspect(conn).get_indexes("contacts") if i["name"] == "ix_contacts_phone"]
    assert index["column_names"] == ["phone"]
    where = index.get("dialect_options", {}).get(f"{engine.dialect.name}_where")
    return None if where is None else str(where)


def _plan(session: Session, backend: str) -> str:
    """How the database finds the contacts whose number starts with +4930 (the query a search by phone runs)."""
    query = "SELECT id FROM contacts WHERE phone >= :low AND phone < :high ORDER BY phone, id LIMIT 3"
    bounds = {"low": "+4930", "high": "+4931"}
    if backend == "postgresql":
        session.execute(text("SET LOCAL enable_seqscan = off"))  # a few rows: make it say what it can use
        return "\n".join(session.scalars(text(f"EXPLAIN {query}"), bounds))
    return "\n".join(row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {query}"), bounds))


def test_contacts_with_a_number_are_found_through_a_phone_index_of_them_only_after_0043(config, backend):
    database_url = config["DATABASE_URL"]
    engine = make_engine(database_url)
    upgrade(engine, "0042")
    with Session(engine) as session:
        session.add_all(
            [
                Contact(email=f"c{i}@example.com", phone=f"+4930{1000 + i}" if i % 2 else None, fields={})
                for i in range(8)
            ]
        )
        session.commit()
    assert _phone_index(engine) is None

    upgrade(engine)
    assert _phone_index(engine) is not None and HAS_PHONE in _phone_index(engine).replace("(", "").replace(")", "")
    with Session(engine) as session:
        assert "ix_contacts_phone" in _plan(session, engine.dialect.name)
        session.rollback()
        first = search(session, "phone", "+4930", limit=3)
        second = search(session, "phone", "+4930", first.after, limit=3)
        assert [c.email for c in first.contacts + second.contacts] == [
            "c1@example.com",
            "c3@example.com",
            "c5@example.com",
            "c7@example.com",
        ]
        assert [c.email for c in search(session, "phone", "+49301005").contacts] == ["c5@example.com"]
        session.add(Contact(email="new@example.com", phone="+49301009", fields={}))
        session.add(Contact(email="none@example.com", fields={}))
        session.commit()
        assert [c.email for c in search(session, "phone", "+49301009").contacts] == ["new@example.com"]

    command.downgrade(alembic_config(database_url), "0043-1")
    assert _phone_index(engine) is None
    engine.dispose()
