"""Migration 0017 on an install holding rules: plans stored in format version 1 are rewritten to version 2 (each
carries its version; ``wait until`` always has ``at``), then run as before; the engine refuses a plan of a version
it does not know, saying which and what to do."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

import dsl
from server.app import create_app
from server.db import get_session, make_engine
from server.engine.context import EngineContext
from server.migrate import upgrade
from server.models import Contact, Enrolment, RuleVersion

from ..helpers import api_key, post_event, run_worker

SOURCE = 'rule "Renewal"\nwhen member.joined then\n  tag "joined"\n  wait until now + 1d\n  tag "renewing"\nend\n'
# exactly what Nudge stored for SOURCE before plans carried a version (format 1): `wait_until` has no `at`
PLAN_V1 = {
    "name": "Renewal",
    "line": 1,
    "fingerprint": "06fd61050c927487",
    "entry": {"kind": "default", "every": None},
    "goal": None,
    "quiet_hours": None,
    "trigger": {"kind": "event", "event": "member.joined"},
    "condition": None,
    "match": [],
    "steps": [
        {"id": "s9786af01d0", "line": 3, "op": "tag", "tag": "joined"},
        {
            "id": "s8603dad0a1",
            "line": 4,
            "op": "wait_until",
            "expr": {"+": [{"now": True}, {"duration": 86400}]},
            "source": "now + 1d",
        },
        {"id": "safd115acc5", "line": 5, "op": "tag", "tag": "renewing"},
        {"id": "sde3ac21778", "line": 6, "op": "exit"},
    ],
}


def _install_with_a_version_1_plan(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0015")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rules (id, name, status, active_version_id, origin, created_at, updated_at) "
                "VALUES (1, 'Renewal', 'active', 1, 'rules', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO rule_versions (id, rule_id, number, source, plan, created_at, activated_at) "
                "VALUES (1, 1, 1, :source, :plan, '2026-01-01', '2026-01-01')"
            ),
            {"source": SOURCE, "plan": json.dumps(PLAN_V1)},
        )
    engine.dispose()


@pytest.fixture
def app(config):
    """The app started on an install that holds a version 1 plan (starting migrates it)."""
    _install_with_a_version_1_plan(config["DATABASE_URL"])
    app = create_app(config)
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


def test_a_version_1_plan_is_upgraded_and_then_runs(app):
    client = app.test_client()
    with app.app_context():
        stored = get_session().get(RuleVersion, 1).plan
    assert stored["version"] == dsl.PLAN_VERSION == 2
    assert stored["steps"][1]["at"] is None
    assert dsl.plan_problems(stored, dsl.RulePlan) == []
    # the same text compiles to the same plan: `nudge apply` sees the rule unchanged
    assert dsl.build(SOURCE, "renewal.nudge").plan["rules"][0] == stored

    assert post_event(client, api_key(app), email="m@example.com", event="member.joined").status_code == 202
    run_worker(app)
    with app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact))
        assert [tag.tag for tag in contact.tags] == ["joined"]
        enrolment = session.scalar(select(Enrolment))
        assert (enrolment.version_id, enrolment.pc, enrolment.state) == (1, 2, 0)  # waits a day before the next tag
        assert enrolment.due == enrolment.entered + 86400


@pytest.mark.parametrize(
    "version, says",
    [
        (
            3,
            r"rule version 1 \(rule 1\) holds a plan of format version 3, newer than this Nudge runs \(2\): it was "
            r"compiled by a newer Nudge; upgrade Nudge",
        ),
        (
            None,
            r"rule version 1 \(rule 1\) holds a plan with no format version, older than this Nudge runs \(2\): "
            r"run `nudge db upgrade`",
        ),
    ],
)
def test_the_engine_refuses_a_plan_of_another_version(app, version, says):
    with app.app_context():
        session = get_session()
        row = session.get(RuleVersion, 1)
        row.plan = {**row.plan, "version": version}
        session.commit()
        with pytest.raises(dsl.PlanVersionError, match=says):
            EngineContext(session, app.config, 1_800_000_000).plan(1)
