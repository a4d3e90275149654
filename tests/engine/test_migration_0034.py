"""Migration 0034 on an install holding data: the rules list's index is split in two partial ones (active journeys,
most of them waiting, get a smaller entry), its figures (in it now, entered and completed in 7 days) stay exact,
pausing and resuming still move the right journeys; and it goes back down."""

from __future__ import annotations

import time

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from server.db import make_engine
from server.engine.rules import in_flight, pause, resume
from server.engine.rulestats import rule_rows
from server.migrate import alembic_config, upgrade
from server.models import Enrolment, EnrolmentState, Rule

from ..helpers import insert_rule

NOW = int(time.time())
DAY = 86400
#: (rule, state, entered, finished) of the journeys the install holds
JOURNEYS = [
    (1, EnrolmentState.ACTIVE, NOW - 60, None),  # waiting, entered lately
    (1, EnrolmentState.ACTIVE, NOW - 30 * DAY, None),  # waiting for a month
    (1, EnrolmentState.DONE, NOW - 3600, NOW - 60),  # entered and completed lately
    (1, EnrolmentState.DONE, NOW - 30 * DAY, NOW - 20 * DAY),  # both long ago
    (1, EnrolmentState.EXITED, NOW - 2 * DAY, NOW - DAY),  # entered lately, left by a goal: not completed
    (1, EnrolmentState.PARKED, NOW - 9 * DAY, None),  # failing: not counted as in it
    (2, EnrolmentState.HELD, NOW - DAY, None),  # rule 2 is paused: held ones are in it
    (2, EnrolmentState.ACTIVE, NOW - 8 * DAY, None),
]


def _index_sql(conn, name: str) -> str:
    if conn.dialect.name == "postgresql":
        return conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name}).scalar_one()
    return conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": name}).scalar_one()


def _figures(engine) -> list[tuple[str, int, int, int]]:
    with Session(engine) as session:
        return [(row.name, row.in_flight, row.entered, row.completed) for row in rule_rows(session, NOW)]


def test_waiting_journeys_leave_the_rules_list_index_and_its_figures_stay_exact(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0031")
    with engine.begin() as conn:
        for rule_id, name in ((1, "Welcome"), (2, "Billing")):
            insert_rule(conn, rule_id, name)
        for contact_id, (rule_id, state, entered, finished) in enumerate(JOURNEYS, 1):
            conn.execute(
                text(
                    "INSERT INTO enrolments (contact_id, rule_id, version_id, pc, state, due, entered, finished) "
                    "VALUES (:c, :r, 1, 1, :s, :due, :e, :f)"
                ),
                {"c": contact_id, "r": rule_id, "s": int(state), "due": NOW + DAY, "e": entered, "f": finished},
            )
    expected = [("Billing", 2, 1, 0), ("Welcome", 2, 3, 1)]  # by name: in it now, entered and completed in 7 days
    assert _figures(engine) == expected, "the figures before the migration"

    upgrade(engine)
    with engine.connect() as conn:
        assert "state <> 0" in _index_sql(conn, "ix_enrolments_rule_state"), "waiting journeys are not in it"
        active = _index_sql(conn, "ix_enrolments_rule_active")
        assert "state = 0" in active and "finished" not in active
    assert _figures(engine) == expected, "the same figures, read from the narrower indexes"
    with Session(engine) as session:
        assert (in_flight(session, 1), in_flight(session, 2)) == (2, 2)
        welcome = session.get_one(Rule, 1)
        welcome.active_version_id = 1
        pause(session, "Welcome")
        session.commit()
        assert session.query(Enrolment).filter_by(rule_id=1, state=EnrolmentState.HELD).count() == 2
        assert in_flight(session, 1) == 2
        resume(session, "Welcome")
        session.commit()
        assert session.query(Enrolment).filter_by(rule_id=1, state=EnrolmentState.ACTIVE).count() == 2
    assert _figures(engine) == expected

    command.downgrade(alembic_config(database_url), "0034-1")
    with engine.connect() as conn:
        assert "state <> 0" not in _index_sql(conn, "ix_enrolments_rule_state")
        assert "ix_enrolments_rule_active" not in {i["name"] for i in inspect(conn).get_indexes("enrolments")}
    assert _figures(engine) == expected, "and the same after going back down"
    engine.dispose()
