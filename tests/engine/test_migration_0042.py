"""Migration 0042 on an install holding events: on PostgreSQL the unprocessed-events index keeps the pending events
only (SQLite keeps every event's entry), the events pending before the migration are claimed and run after it, an
event processed before it is not, and it goes back down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from server.app import create_app
from server.db import get_session, make_engine
from server.engine.wake import wake_engine
from server.migrate import alembic_config, upgrade
from server.models import Contact, ContactTag, Enrolment, Event, utcnow
from server.models.events import PENDING_ROWS

from ..helpers import load_rules, run_worker

RULES = """rule "Welcome"
when order.paid then
  tag "buyer"
  wait 1d
end
"""


def _unprocessed_index(engine) -> tuple[list[str], str | None]:
    """The columns of ``ix_events_unprocessed`` and its condition (None: every row has an entry)."""
    with engine.connect() as conn:
        (index,) = [i for i in inspect(conn).get_indexes("events") if i["name"] == "ix_events_unprocessed"]
    where = index.get("dialect_options", {}).get(f"{engine.dialect.name}_where")
    return list(index["column_names"]), None if where is None else str(where)


def test_events_pending_before_0042_are_claimed_after_it_through_an_index_of_pending_events_on_postgresql(
    config, clock, backend
):
    database_url = config["DATABASE_URL"]
    engine = make_engine(database_url)
    upgrade(engine, "0041")
    now = utcnow()
    with Session(engine) as session:
        contacts = [Contact(email=f"c{i}@example.com", fields={}) for i in range(3)]
        session.add_all(contacts)
        session.flush()
        done, *pending = [
            Event(contact_id=c.id, name="order.paid", props={}, received_at=now, occurred_at=now) for c in contacts
        ]
        done.processed_at = now  # processed before the migration: never claimed again
        session.add_all([done, *pending])
        session.commit()
        pending_contacts = {e.contact_id for e in pending}
    full = (["processed_at", "received_at"], None)
    assert _unprocessed_index(engine) == full

    app = create_app(config, clock=clock)  # starting migrates to the head
    try:
        partial = (["processed_at", "received_at"], f"({PENDING_ROWS})")  # as PostgreSQL words the model's condition
        assert _unprocessed_index(engine) == (partial if backend == "postgresql" else full)
        load_rules(app, RULES)
        with app.app_context():
            assert wake_engine()
        run_worker(app)
        with app.app_context():
            session = get_session()
            assert session.scalar(select(func.count()).where(Event.processed_at.is_(None))) == 0
            assert set(session.scalars(select(Enrolment.contact_id))) == pending_contacts
            assert set(session.scalars(select(ContactTag.contact_id).where(ContactTag.tag == "buyer"))) == (
                pending_contacts
            )
            session.rollback()
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()

    command.downgrade(alembic_config(database_url), "0042-1")
    assert _unprocessed_index(engine) == full
    engine.dispose()
