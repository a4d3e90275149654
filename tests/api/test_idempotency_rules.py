"""The Idempotency-Key's checks made cheap without changing what they decide: which keys are valid, the body's digest,
and the answer's row as the ingest's writer stores it (the same text as SQLAlchemy's own insert)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from server.api.idempotency import body_digest, valid_key
from server.db import get_session
from server.engine.once import _COLUMNS, Answer, Answered, Once, _utc_text, outcomes, session_records
from server.models import ApiKey, IdempotencyRecord

from ..helpers import api_key

ENDPOINT = "POST /api/v1/events"


def _the_rule(key: str) -> bool:
    """The rule as first written: 1 to 255 characters, each from ``!`` (33) to ``~`` (126)."""
    return 1 <= len(key) <= 255 and all(33 <= ord(c) < 127 for c in key)


def test_every_single_character_is_judged_as_the_rule_says():
    """Every code point, surrogates included, alone and inside an otherwise valid key."""
    for point in range(sys.maxunicode + 1):
        c = chr(point)
        assert valid_key(c) == _the_rule(c), hex(point)
    for c in ["\x00", "\t", "\n", "\x1f", " ", "!", "~", "\x7f", "\x80", "\xa0", "\xff", "é", "\u2028", "\ud800", "😀"]:
        key = f"abc{c}def"
        assert valid_key(key) == _the_rule(key), repr(c)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a",
        "x" * 255,
        "x" * 256,
        "~" * 255,
        "!" * 256,
        " ",
        "with space",
        " leading",
        "trailing ",
        "tab\there",
        "new\nline",
        "nul\x00",
        "del\x7f",
        "naïve",
        "caf\xe9",  # as a latin-1 header byte arrives through WSGI
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "x" * 254 + "é",
        "x" * 10_000,
    ],
)
def test_a_key_is_valid_exactly_when_the_rule_says(key):
    assert valid_key(key) == _the_rule(key)


def test_a_key_of_255_visible_characters_is_stored_and_replayed(ingest):
    key = "".join(chr(33 + i % 94) for i in range(255))
    body = {"contact": {"email": "edge@example.com"}, "event": "form.submitted"}
    first = ingest.post("/events", json=body, headers={"Idempotency-Key": key})
    again = ingest.post("/events", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json


@pytest.mark.parametrize("key", ["x" * 255 + "!", "tab\there", "del\x7f", "\x01"])
def test_a_key_outside_the_rule_is_422_naming_the_header(ingest, key):
    body = {"contact": {"email": "edge@example.com"}, "event": "form.submitted"}
    response = ingest.post("/events", json=body, headers={"Idempotency-Key": key})
    assert response.status_code == 422 and response.json["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    "body",
    [
        {"contact": {"email": "bench@example.com"}, "event": "form.submitted", "props": {"form": "newsletter"}},
        {"b": 1, "a": [3, 2, {"z": None, "y": True, "x": False}], "c": {"é": "ünïcode 😀", "\u2028": "\x00"}},
        {"floats": [0.1, 1e300, -0.0, 1.5e-7, 12345678901234567890.0], "ints": [0, -1, 2**70]},
        {"nan": math.nan, "inf": math.inf, "-inf": -math.inf},
        {"events": [{"event": f"e{i}", "props": {"i": i}} for i in range(50)]},
        "a string",
        ["a", 1, None],
        12,
        None,
        {},
    ],
)
def test_the_digest_is_that_of_the_sorted_compact_json(body):
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert body_digest(body) == expected


def test_the_digest_does_not_depend_on_the_order_of_members():
    assert body_digest({"a": 1, "b": {"c": 2, "d": 3}}) == body_digest({"b": {"d": 3, "c": 2}, "a": 1})


def test_a_time_is_stored_as_the_columns_own_processors_write_it(app):
    with app.app_context():
        dialect = get_session().connection().dialect
    convert = IdempotencyRecord.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    if convert is None:  # the driver takes a datetime as it is (PostgreSQL): nothing to compare
        return
    text = _utc_text(convert)
    start = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)
    times = [start + timedelta(microseconds=7 * i, hours=i) for i in range(200)]
    times += [datetime(2026, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=5)))]
    for value in times:
        assert text(value) == convert(value), value
    with pytest.raises(ValueError, match="naive"):
        text(datetime(2026, 1, 1))  # noqa: DTZ001 (the naive time the column refuses)


def test_the_answers_rows_are_stored_as_sqlalchemys_insert_stores_them(app):
    """The rows :func:`outcomes` stores (through the driver on SQLite) read back, through the driver, exactly as
    the same values inserted by SQLAlchemy Core; one row alone and several in one statement."""
    api_key(app, "ingest")
    with app.app_context():
        session = get_session()
        key_id = session.scalar(select(ApiKey.id))
        onces = [
            Once(key_id, f"new-{i}", ENDPOINT, f"{i:064x}", 202, lambda stored: {"id": stored[0][0], "é": [1.5, None]})
            for i in range(3)
        ]
        alone = outcomes([onces[0]], [[(11, 1)]], session_records(session))
        group = outcomes([None, onces[1], None, onces[2]], [[(1, 1)], [(12, 2)], [(2, 2)], [(13, 3)]],
                         session_records(session))  # fmt: skip
        assert alone == [Answered(Answer(202, {"id": 11, "é": [1.5, None]}), [(11, 1)], False)]
        assert group[0] == [(1, 1)] and group[2] == [(2, 2)]
        assert [answered.answer.payload["id"] for answered in (group[1], group[3])] == [12, 13]
        table = IdempotencyRecord.__table__
        stored = session.execute(select(table).where(table.c.key.like("new-%")).order_by(table.c.key)).all()
        assert [row.key for row in stored] == ["new-0", "new-1", "new-2"]
        assert stored[1].created_at == stored[2].created_at  # one time for a group's answers
        session.execute(
            insert(table),
            [{**{c: getattr(row, c) for c in _COLUMNS}, "key": row.key.replace("new", "core")} for row in stored],
        )
        columns = ", ".join(c if c != "key" else '"key"' for c in _COLUMNS)
        raw = (
            session.connection()
            .exec_driver_sql(f'SELECT {columns} FROM idempotency_keys ORDER BY substr("key", 1, 3) = \'new\', "key"')
            .all()
        )
        session.rollback()
    core, ours = raw[:3], raw[3:]
    assert [row[1] for row in core] == ["core-0", "core-1", "core-2"]
    assert [row[1] for row in ours] == ["new-0", "new-1", "new-2"]
    for a, b in zip(core, ours, strict=True):
        assert a[:1] + a[2:] == b[:1] + b[2:]
        assert [type(value) for value in a] == [type(value) for value in b]
