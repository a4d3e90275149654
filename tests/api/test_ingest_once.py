"""Keyed event posts (an ``Idempotency-Key``) on the ingest's own writer: a key is nearly always new, so the writer
stores a group's answers without looking their keys up first; a key stored before fails the answers' insert, and the
group goes, all or nothing, through the session's path, which looks the keys up (by the unique index) and answers."""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Any

from flask import request_started
from sqlalchemy import event, func, select

from server.api.idempotency import body_digest
from server.db import get_session
from server.engine.groups import _write_group
from server.engine.ingest import prepare_events
from server.engine.once import Answer, Answered, Once, any_stored, earlier
from server.models import ApiKey, Event, IdempotencyRecord, utcnow

from ..helpers import api_key

ENDPOINT = "POST /api/v1/events"


def _event(i: int) -> dict[str, Any]:
    return {"contact": {"email": f"once{i}@example.com"}, "event": "form.submitted", "props": {"i": i}}


def _count(app, model) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count(model.id)))


def _keyed(api_key_id: int, key: str, body: dict[str, Any]):
    """A single-event post made once with *key*, as the API prepares it; its answer names its event's id."""
    once = Once(api_key_id, key, ENDPOINT, body_digest(body), 202, lambda stored: {"id": stored[0][0]})
    return prepare_events(None, [body], prefix=lambda i: "")._replace(once=once)


def _used_key(app, client) -> tuple[str, int]:
    """An ingest key whose use is noted (its next posts take the lean path), and its id."""
    key = api_key(app, "ingest")
    assert client.post("/api/v1/events", json=_event(0), headers={"Authorization": f"Bearer {key}"}).status_code == 202
    with app.app_context():
        return key, get_session().scalar(select(ApiKey.id).where(ApiKey.prefix == key.split("_")[2]))


def test_an_expired_answer_gives_way_to_the_new_request_on_the_lean_path(app, client):
    key, key_id = _used_key(app, client)
    with app.app_context():  # an answer kept past its day, not yet deleted
        old = utcnow() - timedelta(hours=24, minutes=1)
        session = get_session()
        session.add(IdempotencyRecord(api_key_id=key_id, key="k", endpoint=ENDPOINT, request_hash="0" * 64,
                                      status_code=202, response={"old": True}, created_at=old))  # fmt: skip
        session.commit()
    flask_saw: list[str] = []
    request_started.connect(lambda sender, **_extra: flask_saw.append("flask"), app, weak=False)
    before = _count(app, Event)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "k"}
    answer = client.post("/api/v1/events", json=_event(1), headers=headers)
    assert answer.status_code == 202 and "Idempotent-Replayed" not in answer.headers and "old" not in answer.json
    assert flask_saw == [] and _count(app, Event) == before + 1
    again = client.post("/api/v1/events", json=_event(1), headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == answer.json
    with app.app_context():
        [(response, created_at)] = get_session().execute(
            select(IdempotencyRecord.response, IdempotencyRecord.created_at)
        )
    assert response == answer.json and created_at > old


def test_a_group_with_a_key_stored_before_is_stored_all_or_nothing_and_answered(app, ingest):
    """A key stored before fails the writer's insert of the group's answers after its events: nothing of the group
    stays from that try, and the session's path stores the others once and gives that key its answer again."""
    before_body = _event(1)
    stored_before = ingest.post("/events", json=before_body, headers={"Idempotency-Key": "old"})
    assert stored_before.status_code == 202
    events, records = _count(app, Event), _count(app, IdempotencyRecord)
    with app.app_context():
        key_id = get_session().scalar(select(ApiKey.id))
        keyed = functools.partial(_keyed, key_id)
        group = [keyed("new", _event(2)), prepare_events(None, [_event(3)], prefix=str), keyed("old", before_body)]
        new, plain, old = _write_group(group)
    assert isinstance(new, Answered) and not new.replayed and new.answer == (202, {"id": new.stored[0][0]})
    assert isinstance(plain, list) and len(plain) == 1
    assert old == Answered((202, stored_before.json), [], True)
    assert _count(app, Event) == events + 2 and _count(app, IdempotencyRecord) == records + 1
    with app.app_context():
        stored = get_session().scalars(select(Event.id).where(Event.id.in_([new.stored[0][0], plain[0][0]]))).all()
    assert len(stored) == 2


def test_a_keys_answer_is_found_through_the_unique_index_not_by_reading_the_table(app, ingest, backend):
    """No index starts with the key: asked by the key alone, every look-up read the whole table (a day of keys)."""
    body = _event(1)
    assert ingest.post("/events", json=body, headers={"Idempotency-Key": "k-1"}).status_code == 202
    with app.app_context():
        session = get_session()
        key_id = session.scalar(select(ApiKey.id))
        statements: list[tuple[str, Any]] = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            if "FROM idempotency_keys" in statement:
                statements.append((statement, parameters))

        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            once = Once(key_id, "k-1", ENDPOINT, body_digest(body), 202, dict)
            found = earlier(session, [once, once._replace(key="k-2")])
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert set(found) == {(key_id, "k-1")} and isinstance(found[key_id, "k-1"], Answer)
        connection = session.connection()
        if backend == "sqlite":
            recorded = _Recording(connection.connection.cursor())
            assert any_stored(recorded, [(key_id, "k-1"), (key_id, "k-2")])
            assert not any_stored(recorded, [(key_id + 1, "k-1")])  # another API key's key
            for statement, parameters in [*statements, *recorded.seen]:
                plan = " ".join(
                    str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                )
                assert "SCAN idempotency_keys" not in plan and "INDEX" in plan, plan  # fmt: skip
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a few rows: make it say what it can use
            for statement, parameters in statements:
                plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
                assert re.search(r"Index Cond: .*api_key_id", plan), plan
        assert len(statements) == 1
        session.rollback()


class _Recording:
    """A DBAPI cursor that notes the statements run through it."""

    def __init__(self, cursor: Any):
        self.cursor = cursor
        self.seen: list[tuple[str, Any]] = []

    def execute(self, statement: str, parameters: Any) -> Any:
        self.seen.append((statement, tuple(parameters)))
        return self.cursor.execute(statement, parameters)
