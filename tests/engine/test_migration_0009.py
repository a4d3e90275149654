"""Migration 0009 on an install holding data: events and journeys read as never failed, and a send an older version
left in flight keeps its meaning (it may have reached the provider), so it is held, never resent blindly."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import text

from server.db import make_engine
from server.migrate import alembic_config, upgrade


def test_an_existing_install_keeps_its_rows_and_its_in_flight_send_stays_ambiguous(database_url):
    engine = make_engine(database_url)
    before = ScriptDirectory.from_config(alembic_config(database_url)).get_revision("0009").down_revision
    upgrade(engine, before)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (id, public_id, email, score, fields, created_at, updated_at) "
                "VALUES (1, 'p-old', 'old@example.com', 0, '{}', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO events (contact_id, name, props, source, occurred_at, received_at) "
                "VALUES (1, 'signup.completed', '{}', 'api', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO enrolments (contact_id, rule_id, version_id, pc, state, due, entered) "
                "VALUES (1, 1, 1, 0, 0, 100, 100)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO messages (key, contact_id, channel, template, status, attempts, data, "
                "created_at, claimed_at) VALUES ('enr:1:a', 1, 'email', 'a', 'sending', 1, '{}', "
                "'2026-01-01', '2026-01-01 10:00:00')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT attempts, retry_at, error, parked_at, processed_at FROM events")).one() == (
            0,
            None,
            None,
            None,
            None,
        )
        assert conn.execute(text("SELECT attempts, error, state FROM enrolments")).one() == (None, None, 0)
        sending_at, claimed_at = conn.execute(text("SELECT sending_at, claimed_at FROM messages")).one()
        assert sending_at == claimed_at is not None
    engine.dispose()
