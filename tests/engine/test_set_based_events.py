"""A batch of events processed set-wise has exactly the effects the interpreter has, one event at a time."""

from datetime import timedelta

from sqlalchemy import select

from server.db import get_session
from server.engine import jobs, setwise
from server.engine.context import EngineContext
from server.models import Contact, ContactTag, Enrolment, Event, JourneyLog, Message, Rule
from server.models.base import utcnow

from ..helpers import load_rules

RULES = """rule "Welcome"
when form.submitted then
  tag "lead"
  score +5
  send email welcome
  wait 1d
  send email followup
end

rule "Pricing"
  always
when page.viewed and event.path == "/pricing" then
  score +1
  tag "pricing"
end

rule "Pro"
  once per contact
when signup.done and contact.stage == "pro" then
  send email pro
  wait 2d
end

rule "Pro twice"
  always
when signup.done then
  tag "pro"
end

rule "Ordered"
when order.placed then
  score +5
  tag "buyer"
end

rule "Ordered big"
when order.placed and contact.score > 5 then
  tag "big"
end

rule "Points"
when points.earned then
  score +2
  tag "points"
  score -1
  tag "lead"
  score +0.5
  wait 1h
end

rule "Trial"
when trial.started then
  if contact.score > 3 then
    tag "warm"
  end
  wait 1d
end

rule "Back"
when visit.back and contact.last_seen > now - 10m then
  tag "back"
end

rule "Goal"
when demo.booked then
  wait 3d
  send email nudge
end
"""

#: each twin gets the same events, in this order; (name, props, minutes before now it happened)
STORIES = {
    "a": [
        ("form.submitted", {}, 30),
        ("page.viewed", {"path": "/pricing"}, 20),
        ("page.viewed", {"path": "/pricing"}, 25),  # earlier than the one before: last seen does not move back
        ("page.viewed", {"path": "/blog"}, 10),
        ("form.submitted", {}, 9),  # still in Welcome: the default entry policy keeps it out
        ("signup.done", {}, 8),
        ("trial.started", {}, 7),  # a branch: the interpreter's, and so is everything after it
        ("page.viewed", {"path": "/pricing"}, 6),
    ],
    "b": [
        ("page.viewed", {"path": "/pricing"}, 5),
        ("signup.done", {}, 4),
        ("page.viewed", {"path": "/pricing"}, 3),
        ("signup.done", {}, 2),  # "once per contact" keeps it out of Pro; "always" lets it into Pro twice
    ],
    # a rule's condition reads the contact after another rule's journey ran: the interpreter's, from there on
    "c": [("contact.note", {"machine": True}, 1), ("unknown.event", {}, 1), ("order.placed", {}, 1)],
    # a run of several score steps (each line and event with the score of its own step; a fraction too) and a tag
    # the contact has already ("lead"): one per step, written together
    "d": [("form.submitted", {}, 3), ("points.earned", {}, 2)],
    # a condition reads last_seen in a later round: it sees the earlier rounds' events move it (and its own)
    "e": [("page.viewed", {"path": "/blog"}, 3), ("visit.back", {}, 30)],
}
STAGES = {"a": "pro", "b": "pro", "c": "lead", "d": "lead", "e": "lead"}


def _setup(app, now):
    """Two twins per story, ``set-*`` and ``one-*``, with the same events; return the event ids of each side."""
    load_rules(app, RULES)
    ids: dict[str, list[int]] = {"set": [], "one": []}
    with app.app_context():
        session = get_session()
        contacts = {}
        for side in ids:
            for story in STORIES:
                contact = Contact(email=f"{side}-{story}@example.com", fields={}, stage=STAGES[story], score=1)
                session.add(contact)
                contacts[side, story] = contact
        session.flush()
        longest = max(len(events) for events in STORIES.values())
        for position in range(longest):  # the stories interleaved, as a busy site sends them
            for story, events in STORIES.items():
                if position >= len(events):
                    continue
                name, props, ago = events[position]
                for side in ids:
                    ids[side].append(_store(session, contacts[side, story].id, name, props, now, ago))
        session.commit()
    return ids


def _store(session, contact_id, name, props, now, ago):
    """Store one event that happened *ago* minutes before *now*, received *now*; return its id."""
    event = Event(
        contact_id=contact_id, name=name, props=props, occurred_at=now - timedelta(minutes=ago), received_at=now
    )
    session.add(event)
    session.flush()
    return event.id


def _effects(app, email):
    """Everything processing the events did to one contact, in a form both twins can share."""
    with app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact).where(Contact.email == email))
        rules = {r.id: r.name for r in session.scalars(select(Rule))}
        lines = select(JourneyLog).where(JourneyLog.contact_id == contact.id).order_by(JourneyLog.id)
        journal = [
            (rules.get(r.rule_id), r.action, {k: v for k, v in r.data.items() if k != "message"})
            for r in session.scalars(lines)
        ]
        raised = sorted(
            (e.name, sorted(e.props.items()))
            for e in session.scalars(select(Event).where(Event.contact_id == contact.id, Event.source == "nudge"))
        )
        marks = [
            (e.name, e.processed_at is not None, e.retry_at, e.parked_at, e.attempts)
            for e in session.scalars(
                select(Event).where(Event.contact_id == contact.id, Event.source != "nudge").order_by(Event.id)
            )
        ]
        tags = sorted(session.scalars(select(ContactTag.tag).where(ContactTag.contact_id == contact.id)))
        outbox = sorted(
            (
                m.channel,
                m.template,
                m.status,
                m.key.split(":")[0],
                m.key.split(":")[2],
                {k: v for k, v in (m.data or {}).items() if k != "enrolment"},
            )
            for m in session.scalars(select(Message).where(Message.contact_id == contact.id))
        )
        journeys = sorted(
            (rules[e.rule_id], e.pc, e.state, e.due, e.entered, e.exit_reason, session.get(Event, e.event_id).name)
            for e in session.scalars(select(Enrolment).where(Enrolment.contact_id == contact.id))
        )
        return {
            "contact": (contact.score, contact.last_seen, contact.updated_at),
            "journal": journal,
            "raised": raised,
            "marks": marks,
            "tags": tags,
            "outbox": outbox,
            "journeys": journeys,
        }


def test_a_batch_processed_set_wise_has_the_interpreters_effects(app):
    now = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    clock = int(now.timestamp())
    ids = _setup(app, now)
    with app.app_context():
        # the twins' events in one batch through the interpreter, one after the other (that job's own only)
        app.config.update(ENGINE_SET_WISE_EVENTS=False, ENGINE_EVENT_BATCH=1)
        assert jobs.process_events(ids["one"], now=clock) == len(ids["one"])
        # one batch, set-wise where it can be: a job of one event claims all the others still pending
        app.config.update(ENGINE_SET_WISE_EVENTS=True, ENGINE_EVENT_BATCH=1000)
        assert jobs.process_events(ids["set"][:1], now=clock) == len(ids["set"])
    for story in STORIES:
        batch, alone = _effects(app, f"set-{story}@example.com"), _effects(app, f"one-{story}@example.com")
        for key in batch:
            assert batch[key] == alone[key], (story, key)
    # the stories did what they say
    a, b = _effects(app, "set-a@example.com"), _effects(app, "set-b@example.com")
    assert a["tags"] == ["lead", "pricing", "pro", "warm"]
    # a tag the contact has already raises no ``tag.added`` (PostgreSQL counted the skipped insert as new)
    assert [props for name, props in a["raised"] if name == "tag.added"] == [
        [("tag", "lead")],
        [("tag", "pricing")],
        [("tag", "pro")],
        [("tag", "warm")],
    ]
    assert a["contact"][0] == 1 + 5 + 1 + 1 + 1
    assert [j[0] for j in a["journeys"]] == ["Pricing", "Pricing", "Pricing", "Pro", "Pro twice", "Trial", "Welcome"]
    assert sorted(m[1] for m in a["outbox"]) == ["pro", "welcome"]
    assert sorted(j[0] for j in b["journeys"]) == ["Pricing", "Pricing", "Pro", "Pro twice", "Pro twice"]
    assert _effects(app, "set-c@example.com")["tags"] == ["big", "buyer"]  # the condition saw the first journey
    d = _effects(app, "set-d@example.com")
    assert [(action, data) for _rule, action, data in d["journal"] if action in ("score", "tag")][-5:] == [
        ("score", {"delta": 2, "score": 8}),
        ("tag", {"tag": "points"}),
        ("score", {"delta": -1, "score": 7}),
        ("tag", {"tag": "lead"}),
        ("score", {"delta": 0.5, "score": 7.5}),
    ]
    assert _effects(app, "set-e@example.com")["tags"] == ["back"]  # last seen 3 minutes ago, not 30
    assert all(mark[1] for story in STORIES for mark in _effects(app, f"set-{story}@example.com")["marks"])


def test_only_what_needs_the_interpreter_goes_to_it(app):
    """Guards the test above: the set-wise path takes every event it can, and hands back the rest in order."""
    now = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    ids = _setup(app, now)
    with app.app_context():
        session = get_session()
        ctx = EngineContext(session, app.config, int(now.timestamp()), plugins=app.extensions["nudge.plugins"])
        table = Event.__table__
        rows = session.execute(
            select(table.c.id, table.c.contact_id, table.c.name, table.c.props, table.c.source)
            .where(table.c.id.in_(ids["set"]))
            .order_by(table.c.id)
        ).all()
        left = setwise.process(ctx, rows)
        names = [session.get(Event, event_id).name for event_id in left]
        session.rollback()
    # story a from its branch on, story c from its order on; nothing of b
    assert names == ["order.placed", "trial.started", "page.viewed"]


SEEN_RULES = """rule "Scored"
  always
when form.submitted then
  score +1
  tag "seen"
end
"""

#: last seen before the batch (minutes before now, None: never), then the batch's events (minutes before now)
SEEN = {
    "later": (1, [20]),  # seen since the event happened: last seen stays
    "never": (None, [20]),
    "earlier": (60, [20]),
    "two": (None, [10, 20]),  # two rounds of one batch: the latest of the two, not the last
    "ahead": (None, [-10]),  # an event dated after now: seen now, not in the future
}


def test_a_score_step_moves_last_seen_only_forward(app):
    """The set-wise path writes a scored contact's last seen with its score, in one rewrite of the contact: last
    seen still moves only forward, to the batch's latest moment (never past now), as the interpreter moves it."""
    now = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    load_rules(app, SEEN_RULES)
    ids: dict[str, list[int]] = {"set": [], "one": []}
    with app.app_context():
        session = get_session()
        for side in ids:
            for story, (seen, events) in SEEN.items():
                last_seen = None if seen is None else now - timedelta(minutes=seen)
                contact = Contact(email=f"{side}-{story}@example.com", fields={}, score=1, last_seen=last_seen)
                session.add(contact)
                session.flush()
                ids[side] += [_store(session, contact.id, "form.submitted", {}, now, ago) for ago in events]
        session.commit()
        app.config.update(ENGINE_SET_WISE_EVENTS=False, ENGINE_EVENT_BATCH=1)
        assert jobs.process_events(ids["one"], now=int(now.timestamp())) == len(ids["one"])
        app.config.update(ENGINE_SET_WISE_EVENTS=True, ENGINE_EVENT_BATCH=1000)
        assert jobs.process_events(ids["set"][:1], now=int(now.timestamp())) == len(ids["set"])
    for story in SEEN:
        batch, alone = _effects(app, f"set-{story}@example.com"), _effects(app, f"one-{story}@example.com")
        assert batch == alone, story
    expected = {"later": 1, "never": 20, "earlier": 20, "two": 10, "ahead": 0}
    for story, ago in expected.items():
        score, last_seen, _updated = _effects(app, f"set-{story}@example.com")["contact"]
        assert (score, last_seen) == (1 + len(SEEN[story][1]), now - timedelta(minutes=ago)), story
