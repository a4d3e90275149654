"""Migration 0044: on PostgreSQL the contacts' pages keep room for a row's next version, so that the engine's
rewrites of ``last_seen`` and the score (neither indexed) are heap-only (no index entries) for contacts stored
after it, where before nearly none were; SQLite is unchanged; and it goes back down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text
from sqlalchemy.orm import Session

from server.db import make_engine
from server.migrate import alembic_config, upgrade
from server.models import Contact, utcnow
from server.models.contacts import FILLFACTOR

#: enough contacts to fill several pages (~60 a page when packed), so the last page's free room does not decide
CONTACTS = 600


def _fillfactor(session: Session) -> str | None:
    options = session.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'contacts'"))
    return next((option for option in options or () if option.startswith("fillfactor=")), None)


def _heap_only_share(engine, batch: str) -> float:
    """Store *CONTACTS* new contacts, then move each one's ``last_seen`` and score as the engine does (one
    statement); the share of those rewrites PostgreSQL wrote heap-only, counted in the rewrite's transaction."""
    with Session(engine) as session:
        session.add_all([Contact(email=f"{batch}{i}@example.com", fields={}) for i in range(CONTACTS)])
        session.commit()
        updated = session.execute(
            text("UPDATE contacts SET last_seen = :now, score = score + 1 WHERE email LIKE :batch"),
            {"now": utcnow(), "batch": f"{batch}%"},
        ).rowcount
        heap_only = session.scalar(text("SELECT pg_stat_get_xact_tuples_hot_updated('contacts'::regclass)"))
        session.commit()
    assert updated == CONTACTS
    return heap_only / updated


def _sqlite_table(engine) -> str:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'contacts'"))


def test_contacts_stored_after_0044_are_rewritten_without_index_entries_on_postgresql(config, backend):
    database_url = config["DATABASE_URL"]
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0043")
        before = _sqlite_table(engine) if backend == "sqlite" else None
        if backend == "postgresql":
            with Session(engine) as session:
                assert _fillfactor(session) is None
            packed = _heap_only_share(engine, "before")
            assert packed < 0.1  # a full page has no room: a new version goes elsewhere, with an entry per index

        upgrade(engine)
        if backend == "postgresql":
            with Session(engine) as session:
                assert _fillfactor(session) == f"fillfactor={FILLFACTOR}"
            assert _heap_only_share(engine, "after") > 0.3
            with Session(engine) as session:  # every contact still there
                assert session.scalar(text("SELECT count(*) FROM contacts")) == 2 * CONTACTS
        else:  # SQLite has no such setting: its table is as it was
            assert _sqlite_table(engine) == before

        command.downgrade(alembic_config(database_url), "0043")
        if backend == "postgresql":
            with Session(engine) as session:
                assert _fillfactor(session) is None
    finally:
        engine.dispose()
