"""Migration 0041 on an install holding a trace: the index of enrolment ids goes, and the stats rollup still finds
each journey's older lines (through its contact) and counts an entry into a wait written before the migration
(``{"until", "pc": 0}``) and one written after it (``{"until"}``, 7 bytes shorter) alike, in batches of any size,
by the database and line by line; ``nudge explain`` words both the same; and it goes back down."""

from __future__ import annotations

from collections import Counter

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from server.db import make_engine
from server.engine import rollup_trace
from server.engine.explain import describe
from server.migrate import alembic_config, upgrade

from ..helpers import insert_rule

NOW = 1_780_000_000
DAY = 86400
PLAN = '{"steps": [{"op": "wait", "id": "w1", "seconds": 86400}, {"op": "tag", "id": "t1", "tag": "x"}, '
PLAN += '{"op": "wait", "id": "w2", "seconds": 86400}]}'
OLD_ENTRY = f'{{"until": {NOW + DAY}, "pc": 0}}'
NEW_ENTRY = f'{{"until":{NOW + DAY}}}'


def _line(conn, enrolment: int, contact: int, rule: int, at: int, action: str, data: str) -> None:
    conn.execute(
        text(
            "INSERT INTO journey_log (enrolment_id, contact_id, rule_id, at, action, data) "
            "VALUES (:e, :c, :r, :at, :a, :d)"
        ),
        {"e": enrolment, "c": contact, "r": rule, "at": at, "a": action, "d": data},
    )


def _counts(engine, monkeypatch, size: int) -> Counter:
    """The journey counters of the whole trace, by (rule, step, metric), folded in batches of *size* lines both
    ways (the database's counts and the line by line fold agree batch by batch)."""
    monkeypatch.setattr(rollup_trace, "BATCH", size)
    total: Counter = Counter()
    with Session(engine) as session:
        after = 0
        while True:
            last, by_line = rollup_trace.journey_rows(session, after, line_by_line=True)
            assert rollup_trace.journey_rows(session, after) == (last, by_line), f"after line {after}"
            if last == after:
                return total
            for (rule, _version, step, _arm, _day, metric), n in by_line.items():
                total[(rule, step, metric)] += n
            after = last


@pytest.mark.parametrize("size", [1, 3, 100])
def test_entries_into_a_wait_before_and_after_0041_count_alike_without_the_enrolment_index(
    database_url, monkeypatch, size
):
    engine = make_engine(database_url)
    upgrade(engine, "0040")
    with engine.begin() as conn:
        for rule_id, name in ((1, "Check-in"), (2, "Other")):
            insert_rule(conn, rule_id, name, PLAN)
        # journeys 1 and 2 wait at the first step; contact 1 is in another rule's journey (3) too
        for enrolment, contact, rule in ((1, 1, 1), (2, 2, 1), (3, 1, 2)):
            conn.execute(
                text(
                    "INSERT INTO enrolments (id, contact_id, rule_id, version_id, pc, state, due, entered) "
                    "VALUES (:e, :c, :r, :r, 1, 0, :due, :now)"
                ),
                {"e": enrolment, "c": contact, "r": rule, "due": NOW + DAY, "now": NOW},
            )
        _line(conn, 1, 1, 1, NOW, "enter", OLD_ENTRY)  # written before the migration
        _line(conn, 3, 1, 2, NOW, "enter", '{"because": "x"}')
    upgrade(engine)
    with engine.connect() as conn:
        assert {i["name"] for i in inspect(conn).get_indexes("journey_log")} == {"ix_journey_log_contact"}
    with engine.begin() as conn:
        _line(conn, 2, 2, 1, NOW, "enter", NEW_ENTRY)  # written after it
        for enrolment, contact in ((1, 1), (2, 2)):  # the waits end: the next step, then the second wait
            _line(conn, enrolment, contact, 1, NOW + DAY, "tag", '{"tag": "x"}')
            _line(conn, enrolment, contact, 1, NOW + DAY, "wait", f'{{"until": {NOW + 2 * DAY}, "pc": 2}}')
    each = {("", "entered"), ("w1", "reached"), ("w1", "waited"), ("w1", "left"), ("w1", "passed")}
    each |= {("w2", "reached"), ("w2", "waited")}
    expected = Counter({(1, step, metric): 2 for step, metric in each}) + Counter({(2, "", "entered"): 1})
    assert _counts(engine, monkeypatch, size) == expected
    assert describe("enter", {"until": NOW + DAY}) == describe("enter", {"until": NOW + DAY, "pc": 0})

    command.downgrade(alembic_config(database_url), "0041-1")
    with engine.connect() as conn:
        assert "ix_journey_log_enrolment_id" in {i["name"] for i in inspect(conn).get_indexes("journey_log")}
    assert _counts(engine, monkeypatch, size) == expected, "and the same after going back down"
    engine.dispose()
