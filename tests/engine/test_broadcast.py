"""Segments are usable by broadcasts and by schedule triggers."""

import time

import pytest
from sqlalchemy import select, update

from server.consent import record_consent
from server.db import get_session
from server.models import Contact, Message, Rule, ScheduleTimer, Segment
from server.segments import compile_condition, members_clause
from server.sqlwhere import Unsupported

from ..helpers import api_key, load_rules, run_worker


def _setup(app, client):
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    for email, tags in (("v1@example.com", ["vip"]), ("v2@example.com", ["vip"]), ("n@example.com", [])):
        assert client.post("/api/v1/contacts", json={"email": email, "tags": tags}, headers=headers).status_code == 201
    created = client.post("/api/v1/segments", json={"name": "vips", "condition": 'tag == "vip"'}, headers=headers)
    assert created.status_code == 201, created.json
    with app.app_context():
        session = get_session()
        v2 = session.scalar(select(Contact).where(Contact.email == "v2@example.com"))
        record_consent(session, v2.id, "email", False, "unsubscribe-link")
        session.commit()


def test_broadcast_reaches_consenting_members_once(app, client, runner, smtp_server):
    _setup(app, client)
    result = runner.invoke(["broadcast", "email", "welcome", "--segment", "vips", "--id", "spring"])
    assert result.exit_code == 0, result.output
    assert "2 member(s) of 'vips', 2 message(s) queued" in result.output
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["v1@example.com"]  # v2 opted out: suppressed
    again = runner.invoke(["broadcast", "email", "welcome", "--segment", "vips", "--id", "spring"])
    assert "0 message(s) queued" in again.output
    run_worker(app)
    assert len(smtp_server.messages) == 1


def test_broadcast_errors_name_what_to_fix(app, client, runner):
    _setup(app, client)
    assert "no segment named 'vipz'" in runner.invoke(["broadcast", "email", "welcome", "--segment", "vipz"]).output
    assert "no email template 'nope'" in runner.invoke(["broadcast", "email", "nope", "--segment", "vips"]).output


def test_schedule_trigger_with_a_segment(app, client, smtp_server):
    _setup(app, client)
    load_rules(
        app, 'rule "VIP digest"\nwhen every day at 09:00 and in segment "vips" then\n  send email welcome\nend\n'
    )
    with app.app_context():
        session = get_session()
        rule_id = session.scalar(select(Rule.id).where(Rule.name == "VIP digest"))
        session.add(ScheduleTimer(rule_id=rule_id, timezone="UTC", due=int(time.time()) - 1))  # 09:00 has come
        session.commit()
        from server.engine.jobs import fire_timers

        fire_timers()
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["v1@example.com"]  # n is no vip; v2 opted out


def _broadcast(app, runner, segment, ident):
    result = runner.invoke(["broadcast", "email", "welcome", "--segment", segment, "--id", ident])
    assert result.exit_code == 0, result.output
    return result.output


def test_broadcast_ids_differing_in_case_or_by_a_wildcard_are_two_broadcasts(app, client, runner, smtp_server):
    _setup(app, client)
    assert "2 member(s) of 'vips', 2 message(s) queued" in _broadcast(app, runner, "vips", "Spring")
    for ident in ("spring", "Sprin_"):  # SQLite's LIKE would take Spring's rows for theirs
        assert "2 member(s) of 'vips', 2 message(s) queued" in _broadcast(app, runner, "vips", ident)
    run_worker(app)
    assert sorted(m["To"] for m in smtp_server.wait_for(3)) == ["v1@example.com"] * 3  # v2 opted out
    with app.app_context():
        keys = sorted(get_session().scalars(select(Message.key).where(Message.key.like("broadcast:%"))))
    assert len(keys) == 6 and len(set(keys)) == 6


def test_broadcast_to_a_segment_only_the_evaluator_can_decide(app, client, runner, smtp_server):
    """A condition without an SQL form (arithmetic between two fields) is walked contact by contact."""
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    for email, score in (("hi@example.com", 5), ("lo@example.com", -1), ("hi2@example.com", 2)):
        created = client.post("/api/v1/contacts", json={"email": email, "score": score}, headers=headers)
        assert created.status_code == 201
    with app.app_context():
        session = get_session()
        condition = "contact.score + contact.score > 2"
        with pytest.raises(Unsupported):
            members_clause(session, compile_condition(session, condition).tree)
        session.add(Segment(name="high", condition=condition))
        session.commit()
    assert "2 member(s) of 'high', 2 message(s) queued" in _broadcast(app, runner, "high", "eval")
    assert "2 member(s) of 'high', 2 message(s) queued" in _broadcast(app, runner, "high", "eval")  # still pending
    run_worker(app)
    assert sorted(m["To"] for m in smtp_server.wait_for(2)) == ["hi2@example.com", "hi@example.com"]
    assert "2 member(s) of 'high', 0 message(s) queued" in _broadcast(app, runner, "high", "eval")
    run_worker(app)
    assert len(smtp_server.messages) == 2


def test_broadcast_cancel_withdraws_what_no_sender_took_and_nothing_else(app, client, runner, smtp_server):
    _setup(app, client)
    _broadcast(app, runner, "vips", "autumn")
    with app.app_context():  # a sender has claimed v1's row: it is on its way and stays so
        session = get_session()
        v1 = session.scalar(select(Contact.id).where(Contact.email == "v1@example.com"))
        session.execute(update(Message).where(Message.contact_id == v1).values(status="sending"))
        session.commit()
    result = runner.invoke(["broadcast-cancel", "autumn"])
    assert result.exit_code == 0, result.output
    assert "broadcast autumn: 1 message(s) withdrawn" in result.output
    with app.app_context():
        statuses = dict(get_session().execute(select(Message.contact_id, Message.status)).all())
    assert statuses[v1] == "sending" and sorted(statuses.values()) == ["cancelled", "sending"]
    # sending it again under the same id revives nothing, and the worker sends nothing cancelled
    assert "0 message(s) queued" in _broadcast(app, runner, "vips", "autumn")
    run_worker(app)
    assert smtp_server.messages == []
    missing = runner.invoke(["broadcast-cancel", "winter"])
    assert missing.exit_code != 0 and "no broadcast 'winter'" in missing.output
