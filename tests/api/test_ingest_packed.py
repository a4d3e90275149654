"""A batch's event values converted for SQLite's driver before the write turn (:attr:`Prepared.packed`): the rows
stored are the very rows the unpacked path and the session's path store, and the turn converts nothing of a
packed request."""

import json
from datetime import UTC, datetime

import pytest

from server.db import get_session
from server.engine import ingest_rows
from server.engine.groups import store_together
from server.engine.ingest import engine_turn, prepare_events, store_events, store_plain_apart

ITEMS = [
    {"contact": {"email": "ann@example.com"}, "event": "form.submitted", "props": {"form": "newsletter", "n": 1}},
    {
        "contact": {"external_id": "crm-1"},
        "event": "page.visited",
        "props": {"path": "/bücher", "nested": {"a": [1, 2.5, None, True]}, "emoji": "\u2603"},
        "occurred_at": "2026-11-29T23:30:00+02:00",
    },
    {"contact": {"email": "ANN@example.com"}, "event": "form.submitted"},  # the contact of the first, no props
]


def _prefix(i):
    return f"events[{i}]."


def _raw_events(engine):
    """Every event's stored columns as the database holds them (the text of the JSON and of the times), but ids."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT e.name, e.props, e.source, e.occurred_at, e.received_at, e.processed_at, e.attempts,"
            " c.email, c.external_id FROM events e JOIN contacts c ON c.id = e.contact_id ORDER BY e.id"
        )
        return cursor.fetchall()
    finally:
        connection.close()


@pytest.mark.sqlite
def test_packed_unpacked_and_session_paths_store_the_same_rows(app):
    engine = app.extensions["nudge.db"].engine
    with app.app_context():
        packed = prepare_events(None, ITEMS, prefix=_prefix, engine=engine)
        unpacked = prepare_events(None, ITEMS, prefix=_prefix)
        assert packed.packed is not None and unpacked.packed is None
        with engine_turn(engine):
            outcomes = store_plain_apart(engine, [packed, unpacked])
        assert outcomes is not None and all(isinstance(outcome, list) for outcome in outcomes)
        session = get_session()
        store_events(session, prepare_events(session, ITEMS, prefix=_prefix))
        session.commit()
    rows = _raw_events(engine)
    assert len(rows) == 9
    first, second, third = rows[0:3], rows[3:6], rows[6:9]
    assert first == second  # one group, one time of the write

    def written_at_as_now(row):
        occurred, received = row[3], row[4]
        return (*row[:3], "now" if occurred == received else occurred, "now", *row[5:])

    assert [written_at_as_now(row) for row in first] == [written_at_as_now(row) for row in third]
    assert first[0][1] == '{"form":"newsletter","n":1}' and first[2][1] == "{}"
    assert first[1][3] == datetime(2026, 11, 29, 21, 30, tzinfo=UTC).replace(tzinfo=None).isoformat(" ") + ".000000"
    assert first[0][3] == first[0][4]  # no occurred_at: the time of the write


@pytest.mark.sqlite
def test_a_packed_request_is_converted_before_the_write_turn(app, monkeypatch):
    engine = app.extensions["nudge.db"].engine
    with app.app_context():
        prepared = prepare_events(None, ITEMS, prefix=_prefix, engine=engine)

        def no_packing_in_the_turn(*_args):
            raise AssertionError("packed in the write turn")

        monkeypatch.setattr(ingest_rows, "pack", no_packing_in_the_turn)
        stored = store_together(prepared)
    assert len(stored) == 3 and stored[0][1] == stored[2][1]
    assert [row[0] for row in _raw_events(engine)] == ["form.submitted", "page.visited", "form.submitted"]


def test_events_are_packed_only_for_sqlite(app):
    engine = app.extensions["nudge.db"].engine
    with app.app_context():
        prepared = prepare_events(None, ITEMS, prefix=_prefix, engine=engine)
    assert (prepared.packed is not None) == (engine.dialect.name == "sqlite")


def test_a_large_batch_of_new_contacts_keeps_each_event_with_its_contact(app, ingest):
    """More rows than one statement holds (contacts and events go in as statements of many rows on SQLite)."""
    emails = [f"c{i}@example.com" for i in range(300)]
    body = {"events": [{"contact": {"email": emails[i % 300]}, "event": "a.b", "props": {"i": i}} for i in range(600)]}
    response = ingest.post("/events/batch", json=body)
    assert response.status_code == 202, response.json
    ids, contact_ids = response.json["ids"], response.json["contact_ids"]
    assert ids == sorted(ids) and len(set(ids)) == 600 and contact_ids[:300] == contact_ids[300:]
    connection = app.extensions["nudge.db"].engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT e.id, e.contact_id, c.email, e.props FROM events e JOIN contacts c ON c.id = e.contact_id"
        )
        stored = {row[0]: (*row[1:3], json.loads(row[3]) if isinstance(row[3], str) else row[3]) for row in cursor}
    finally:
        connection.close()
    assert [stored[event_id] for event_id in ids] == [
        (contact_id, emails[i % 300], {"i": i}) for i, contact_id in enumerate(contact_ids)
    ]
