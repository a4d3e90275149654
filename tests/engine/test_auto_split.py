"""`split auto on EVENT within DURATION` in the engine: arms by Thompson sampling, a winner declared with its
evidence, every later contact given the winner, outcomes only within the window, a test ended by hand."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine import jobs
from server.engine.explain import explain_contact
from server.engine.funnel import rule_funnel
from server.engine.timeutil import to_dt
from server.models import AuditEntry, Contact, Event, JourneyLog, SplitAssignment, SplitTest
from server.models.base import utcnow

from ..helpers import api_key, load_rules

DAY = 86_400
RULE = """rule "Auto"
when campaign.joined then
  split auto on score.changed within 1d
    50%:
      tag "a"
      if contact.score == 5 then
        score +1
      end
    50%: score +1
  end
end
"""


def _join(app, clock: int, first: int, count: int) -> list[int]:
    """*count* new contacts join the campaign at *clock*; every fifth has score 5 (arm A converts those only), every
    fifth another score 3."""
    with app.app_context():
        session = get_session()
        ids = []
        for n in range(first, first + count):
            contact = Contact(email=f"c{n:04d}@example.com", fields={}, score={0: 5, 1: 3}.get(n % 5, 0))
            session.add(contact)
            session.flush()
            event = Event(
                contact_id=contact.id, name="campaign.joined", props={}, occurred_at=to_dt(clock), received_at=utcnow()
            )
            session.add(event)
            session.flush()
            ids.append(event.id)
        session.commit()
        jobs.process_events(ids[:1], now=clock)
        return ids


def _arms(app) -> list[tuple[int, str, int]]:
    with app.app_context():
        rows = get_session().execute(
            select(SplitAssignment.contact_id, SplitAssignment.arm, SplitAssignment.assigned_at).order_by(
                SplitAssignment.id
            )
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize("set_wise", [True, False], ids=["set-wise", "per-contact"])
def test_the_better_arm_is_declared_winner_with_its_evidence_and_every_later_contact_gets_it(app, set_wise):
    load_rules(app, RULE)
    app.config.update(ENGINE_SET_WISE_EVENTS=set_wise, SPLIT_AUTO_MIN_DECIDED=15)
    start = int(utcnow().timestamp()) - 10 * DAY
    for round_ in range(16):  # 10 contacts every 6 hours for 4 days: A's failures are decided a day later
        _join(app, start + round_ * DAY // 4, round_ * 10, 10)
    assigned = _arms(app)
    assert len(assigned) == 160
    with app.app_context():
        session = get_session()
        test = session.scalar(select(SplitTest))
        assert test.winner == "B" and test.declared_by == "engine"
        declared = test.declared_at
        evidence = {arm["name"]: arm for arm in test.evidence["arms"]}
        assert evidence["B"]["p_best"] >= 0.95 and evidence["B"]["decided"] >= 15 and evidence["A"]["decided"] >= 15
        assert evidence["B"]["alpha"] == 1 + evidence["B"]["successes"]
        assert evidence["B"]["beta"] == 1 + evidence["B"]["decided"] - evidence["B"]["successes"]
        assert evidence["B"]["expected_loss"] < 0.01 * evidence["B"]["rate"]
        funnel = rule_funnel(session, "Auto")
        (split,) = funnel["splits"]
        assert split["auto"]["winner"] == "B" and split["auto"]["declared_at"] == declared
        assert split["auto"]["evidence"]["arms"][1]["p_best"] == evidence["B"]["p_best"]
        trace = [
            line.data["auto"]["reason"]
            for line in session.scalars(select(JourneyLog).where(JourneyLog.action == "split").order_by(JourneyLog.id))
        ]
    before = [arm for _, arm, at in assigned if at < declared]
    after = [arm for _, arm, at in assigned if at >= declared]
    assert {"A", "B"} <= set(before), "both arms are explored before a winner"
    assert after and set(after) == {"B"}, "every contact after the declaration gets the winner"
    assert trace[0] == "starting share" and trace[-1].startswith("winner")
    assert {"starting share", "winner (declared by engine)"} <= set(trace)
    with app.app_context():
        last = explain_contact(get_session(), "c0159@example.com")
        first = explain_contact(get_session(), "c0000@example.com")
    assert any("split: arm B, winner (declared by engine)" in line for line in last)
    assert any("by the starting shares" in line and "Beta(" in line for line in first)


def test_only_human_outcomes_within_the_window_count(app):
    load_rules(app, RULE.replace("score.changed within 1d", "promo.clicked within 1d"))
    start = int(utcnow().timestamp()) - 10 * DAY
    _join(app, start, 1, 3)  # scores 0: nobody converts by the rule's own steps
    with app.app_context():
        session = get_session()
        ids = {c.email: c.id for c in session.scalars(select(Contact))}
        for email, after, props in (
            ("c0001@example.com", 3600, {}),  # in the window: a success
            ("c0002@example.com", 2 * DAY, {}),  # after the window: does not count
            ("c0003@example.com", 3600, {"machine": True}),  # a link scanner: does not count
        ):
            session.add(
                Event(
                    contact_id=ids[email],
                    name="promo.clicked",
                    props=props,
                    occurred_at=to_dt(start + after),
                    received_at=utcnow(),
                    processed_at=utcnow(),
                )
            )
        session.commit()
    _join(app, start + 3 * DAY, 4, 1)  # the next contact at the split brings the test up to date
    with app.app_context():
        rows = {
            a.contact_id: (a.decided, a.outcome_at)
            for a in get_session().scalars(select(SplitAssignment).order_by(SplitAssignment.id))
        }
        evidence = get_session().scalar(select(SplitTest)).evidence
    assert rows[ids["c0001@example.com"]] == (True, start + 3600)
    assert rows[ids["c0002@example.com"]] == (True, None)
    assert rows[ids["c0003@example.com"]] == (True, None)
    assert list(rows.values())[-1] == (False, None), "the newest assignment waits for its window"
    assert sum(arm["successes"] for arm in evidence["arms"]) == 1
    assert sum(arm["decided"] for arm in evidence["arms"]) == 3
    assert evidence["phase"] == "starting shares"


def test_a_marketer_ends_the_test_by_hand_from_the_cli_and_the_api(app, runner, client):
    load_rules(app, RULE)
    start = int(utcnow().timestamp()) - 10 * DAY
    _join(app, start, 1, 4)
    wrong = runner.invoke(["splits", "end", "Auto", "3", "C"])
    assert wrong.exit_code == 1 and "has no arm 'C'; its arms are A, B" in wrong.output
    missing = runner.invoke(["splits", "end", "Auto", "9", "A"])
    assert missing.exit_code == 1 and "has no auto-winner split '9'" in missing.output
    done = runner.invoke(["splits", "end", "Auto", "3", "A"])
    assert done.exit_code == 0, done.output
    assert "ended: arm A for every later contact" in done.output
    _join(app, start + DAY, 5, 5)
    assert [arm for _, arm, at in _arms(app) if at == start + DAY] == ["A"] * 5
    shown = runner.invoke(["splits", "show", "Auto"])
    assert "auto-winner: arm A declared" in shown.output and "by cli" in shown.output

    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    step = get_session_step(app)
    bad = client.post(f"/api/v1/rules/Auto/splits/{step}/end", json={"arm": "Z"}, headers=headers)
    assert bad.status_code == 422 and bad.content_type == "application/problem+json"
    assert client.post("/api/v1/rules/Nope/splits/3/end", json={"arm": "A"}, headers=headers).status_code == 404
    ended = client.post(f"/api/v1/rules/Auto/splits/{step}/end", json={"arm": "B"}, headers=headers)
    assert ended.status_code == 200, ended.get_json()
    body = ended.get_json()
    assert body["winner"] == "B" and body["previous_winner"] == "A" and body["declared_by"].startswith("apikey:")
    listed = client.get("/api/v1/rules/Auto/splits", headers=headers).get_json()
    assert listed[0]["winner"] == "B" and listed[0]["outcome"] == "score.changed"
    assert {arm["name"] for arm in listed[0]["evidence"]["arms"]} == {"A", "B"}
    with app.app_context():
        audited = get_session().scalars(select(AuditEntry).where(AuditEntry.action == "split.ended")).all()
    assert (audited[0].actor, audited[0].detail["arm"]) == ("cli", "A")
    assert audited[1].actor.startswith("apikey:") and audited[1].detail == {"step": step, "arm": "B"}


def get_session_step(app) -> str:
    with app.app_context():
        return get_session().scalar(select(SplitTest.step_id))


def test_the_arm_is_the_same_for_the_same_contact_and_state_and_follows_the_posteriors(app):
    b_converts_40_percent = "50%:\n      if contact.score >= 3 then\n        score +1\n      end"
    load_rules(app, RULE.replace("50%: score +1", b_converts_40_percent))
    app.config.update(SPLIT_AUTO_MIN_DECIDED=15, SPLIT_AUTO_PROB=0.9999999)  # A converts 20%, B 40%: no winner
    start = int(utcnow().timestamp()) - 10 * DAY
    for round_ in range(10):
        _join(app, start + round_ * DAY // 4, round_ * 10, 10)
    from server.engine.autosplit import assign
    from server.models import RuleVersion

    with app.app_context():
        session = get_session()
        version = session.scalar(select(RuleVersion))
        op = version.plan["steps"][0]
        contacts = [c.id for c in session.scalars(select(Contact).order_by(Contact.id))]
        now = start + 3 * DAY
        picks = []
        for contact_id in (contacts[0], contacts[0]):
            nested = session.begin_nested()
            session.query(SplitAssignment).filter(SplitAssignment.contact_id == contact_id).delete()
            arm, why = assign(session, app.config, version.rule_id, op, contact_id, now)
            picks.append((arm["name"], why))
            nested.rollback()
    (arm, why), (again, why_again) = picks
    assert why["phase"] == "exploring" and why["reason"] in ("floor", "thompson draw")
    assert (arm, why) == (again, why_again), "same contact, same state: same arm, same draws"
    assert why["p_best"]["B"] > 0.5 and why["posteriors"]["B"][0] > why["posteriors"]["A"][0]
