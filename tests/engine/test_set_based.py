"""The set-based path does for a group exactly what the interpreter does for one contact."""

import time
from datetime import timedelta

from sqlalchemy import select

from server.db import get_session
from server.engine.jobs import requeue_due
from server.models import Contact, ContactTag, Enrolment, Event, JourneyLog, Message

from ..helpers import api_key, load_rules, post_event, run_worker

DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)

RULE = """rule "Drip"
when drip.started then
  wait 1d
  tag "engaged"
  score +5
  send email welcome
  wait 1d
  send email welcome
end
"""


def _effects(app, email):
    with app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact).where(Contact.email == email))
        logs = [
            (r.action, {k: v for k, v in r.data.items() if k not in ("message", "step")})
            for r in session.scalars(
                select(JourneyLog).where(JourneyLog.contact_id == contact.id).order_by(JourneyLog.id)
            )
            if r.action in ("tag", "score", "send", "wait")
        ]
        logs = [(a, {k: v for k, v in d.items() if k != "until"}) for a, d in logs]  # instants differ by a tick
        events = sorted(
            (e.name, e.props)
            for e in session.scalars(select(Event).where(Event.contact_id == contact.id, Event.source == "nudge"))
        )
        tags = sorted(session.scalars(select(ContactTag.tag).where(ContactTag.contact_id == contact.id)))
        outbox = sorted(
            m.key.split(":")[2] for m in session.scalars(select(Message).where(Message.contact_id == contact.id))
        )
        enr = session.scalar(select(Enrolment).where(Enrolment.contact_id == contact.id))
        return contact.score, logs, events, tags, outbox, (enr.pc, enr.state, enr.due is not None)


def _pass(app, clock, delta: timedelta) -> None:
    """Move the engine's clock on by *delta*; a scheduler tick and a worker run the journeys then due."""
    clock.advance(delta)
    with app.app_context():
        requeue_due()
    run_worker(app)


def test_group_and_single_contact_advance_alike(app, client, smtp_server, clock):
    load_rules(app, RULE)
    key = api_key(app)
    with app.app_context():
        session = get_session()
        for email in ("g1@example.com", "g2@example.com", "g3@example.com"):
            session.add(Contact(email=email, fields={}, score=10))
        session.commit()
    for email in ("g1@example.com", "g2@example.com"):
        post_event(client, key, email=email, event="drip.started")
    run_worker(app)
    _pass(app, clock, DAY + MINUTE)  # g1 and g2 are due together, at the same step -> set-based
    _pass(app, clock, DAY / 2)
    post_event(client, key, email="g3@example.com", event="drip.started")
    run_worker(app)
    _pass(app, clock, DAY / 2 + MINUTE)  # g1 and g2 finish; g3 still waits
    assert _effects(app, "g3@example.com")[1] == [("wait", {"why": "wait 1d", "pc": 0})]  # pc: the wait's step
    _pass(app, clock, DAY / 2 + MINUTE)  # g3 alone -> the interpreter
    _pass(app, clock, DAY + MINUTE)  # g3 finishes
    group, single = _effects(app, "g1@example.com"), _effects(app, "g3@example.com")
    assert group[0] == single[0] == 15
    assert group[1:] == single[1:]
    assert group[1] == [
        ("wait", {"why": "wait 1d", "pc": 0}),
        ("tag", {"tag": "engaged"}),
        ("score", {"delta": 5, "score": 15}),
        ("wait", {"why": "wait 1d", "pc": 4}),
        ("send", {"channel": "email", "template": "welcome"}),
        ("send", {"channel": "email", "template": "welcome"}),
    ]
    assert ("score.changed", {"old": 10, "new": 15}) in group[2]
    assert group[3] == ["engaged"]


def test_the_group_step_is_one_the_set_based_path_takes(app):
    """Guards the test above: if this step stopped qualifying, both contacts would use the interpreter."""
    from server.engine import runtime
    from server.engine.context import EngineContext
    from server.models import RuleVersion

    def segment():
        with app.app_context():
            session = get_session()
            ctx = EngineContext(session, app.config, int(time.time()), plugins=app.extensions["nudge.plugins"])
            ops = runtime.segment(session.scalar(select(RuleVersion).order_by(RuleVersion.id)).plan, 1, ctx)
            return ops and [op["op"] for op in ops]

    load_rules(app, RULE)
    assert segment() == ["tag", "score", "send", "wait"]
    load_rules(app, RULE + 'rule "Watcher"\nwhen score.changed then\n  tag "moved"\nend\n')
    assert segment() is None  # someone reacts to score.changed: per contact


def test_a_group_send_is_written_set_wise_without_falling_back(app, client, smtp_server, caplog, clock):
    """A group at a ``send`` step writes its outbox rows with one ``INSERT … SELECT`` (keys built in SQL from each
    enrolment's id); before, the key took the ORM attribute for text and every such batch failed and was redone
    one journey at a time."""
    load_rules(app, RULE)
    key = api_key(app)
    emails = [f"s{i}@example.com" for i in range(4)]
    for email in emails:
        post_event(client, key, email=email, event="drip.started")
    run_worker(app)
    with caplog.at_level("WARNING", logger="server.engine.jobs"):
        _pass(app, clock, DAY + MINUTE)
    assert [r.getMessage() for r in caplog.records if r.name == "server.engine.jobs"] == []
    with app.app_context():
        keys = sorted(get_session().scalars(select(Message.key)))
        ids = sorted(get_session().scalars(select(Enrolment.id)))
    assert len(keys) == 4 and all(k.startswith("enr:") for k in keys)
    assert sorted(int(k.split(":")[1]) for k in keys) == ids
