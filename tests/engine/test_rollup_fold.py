"""The rollup's journey counters made by the database (one GROUP BY over a batch's trace) are those of the line by
line Python fold, batch by batch, on a mixed trace the engine wrote (set-wise and interpreted entries, tags,
scores, sends, waits left and fired, branches, split arms, goal exits, stops, completions, a broadcast's sends)
cut into batches of every size, and on hand-written odd lines (missing or null members, lines of erased journeys,
lines with no rule, data that is no object)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from server.db import get_session
from server.engine import rollup_trace
from server.engine.jobs import process_events, requeue_due
from server.engine.rollup import rollup
from server.engine.rollup_trace import journey_rows
from server.models import Contact, Enrolment, Event, JourneyLog, RuleVersion, StatCounter

from ..helpers import load_rules, run_worker

RULES = """rule "Welcome"
  until order.placed
when form.submitted then
  tag "lead"
  score +2
  send email welcome
  wait 1d
  if contact.score > 3 then
    tag "warm"
  else
    tag "cold"
  end
  send email followup
end

rule "Arms"
when signup.done then
  split
    50%: tag "a"
    50%: tag "b"
  end
  wait 2h
  send email arms
end

rule "Short"
  always
when page.viewed then
  score +1
  if contact.score > 4 then
    stop
  end
  wait for demo.booked up to 1h then
    tag "booked"
  else
    tag "missed"
  end
end
"""


def _store(app, events: list[tuple[int, str]]) -> None:
    with app.app_context():
        session = get_session()
        session.execute(insert(Event), [{"contact_id": c, "name": name, "props": {}} for c, name in events])
        session.commit()
        process_events([])


def _folds(app, monkeypatch, size: int) -> tuple[Counter, Counter, int]:
    """The journey trace folded in batches of *size* lines both ways, batch by batch; the totals and how many of
    the batches had journeys folded line by line as well."""
    monkeypatch.setattr(rollup_trace, "BATCH", size)
    reference: Counter = Counter()
    grouped: Counter = Counter()
    mixed = 0
    with app.app_context():
        session = get_session()
        after = 0
        while True:
            last, by_line = journey_rows(session, after, line_by_line=True)
            again, by_sql = journey_rows(session, after)
            assert (again, by_sql) == (last, by_line), f"batch after line {after} of {size}"
            if last == after:
                return reference, grouped, mixed
            reference += by_line
            grouped += by_sql
            if rollup_trace._stateful(session, after, *_conditions(after, last)):
                mixed += 1
            after = last


def _conditions(after: int, last: int):
    from sqlalchemy import and_

    batch = and_(JourneyLog.id > after, JourneyLog.id <= last)
    return batch, and_(batch, JourneyLog.enrolment_id.is_not(None), JourneyLog.rule_id.is_not(None))


def _people(app, count: int) -> list[int]:
    """The rules loaded and *count* contacts; their ids."""
    load_rules(app, RULES)
    with app.app_context():
        session = get_session()
        session.execute(insert(Contact), [{"email": f"p{i}@example.com", "fields": {}} for i in range(count)])
        session.commit()
        return list(session.scalars(select(Contact.id).order_by(Contact.id)))


@pytest.mark.slow
def test_sql_counts_equal_the_line_by_line_fold_on_a_mixed_trace(app, clock, monkeypatch):
    people = _people(app, 12)
    _store(app, [(c, "form.submitted") for c in people] + [(c, "signup.done") for c in people[:8]])
    _store(app, [(c, "page.viewed") for c in people[::2]] + [(people[1], "order.placed")])  # a goal, mid-wait
    _store(app, [(c, "page.viewed") for c in people[:6]])  # a second view: stopped for some (score > 4)
    _store(app, [(people[0], "demo.booked")])
    clock.advance(timedelta(hours=3))  # the arms' waits and the unbooked demos time out
    with app.app_context():
        requeue_due()
    run_worker(app)
    _store(app, [(people[3], "order.placed")])
    clock.advance(timedelta(days=1, hours=1))  # the welcome waits end: branches, follow-ups, completions
    with app.app_context():
        requeue_due()
    run_worker(app)
    with app.app_context():
        session = get_session()
        actions = Counter(session.scalars(select(JourneyLog.action)))
        session.execute(
            insert(JourneyLog),
            [  # the outbox's notes on sends it made after the journey moved on: they never leave a wait
                {"enrolment_id": e, "contact_id": c, "rule_id": r, "at": 0, "action": "send", "data": {}}
                for e, c, r in session.execute(select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id))
            ],
        )
        session.commit()
    for action in ("enter", "tag", "score", "wait", "branch", "split", "exit", "timeout", "received"):
        assert actions[action] > 0, f"the trace has no {action!r} line: {actions}"

    whole, _, _ = _folds(app, monkeypatch, 100_000)
    assert {key[5] for key in whole} >= {"entered", "reached", "waited", "left", "passed", "exit:completed"}
    assert any(key[5].startswith("exit:") and key[5] not in ("exit:completed", "exit:stopped") for key in whole)
    assert {key[3] for key in whole} >= {"", "A", "B"}
    for size in (1, 2, 3, 5, 8, 13, 40):
        reference, grouped, mixed = _folds(app, monkeypatch, size)
        assert grouped == reference == whole, f"batches of {size}"
        assert mixed > 0, f"batches of {size}: no journey was folded line by line"
    # the rollup itself writes exactly those counters
    with app.app_context():
        session = get_session()
        rollup(session, limit=None)
        stored = Counter(
            {
                (r.rule_id, r.version_id, r.step, r.arm, r.day, r.metric): r.count
                for r in session.scalars(select(StatCounter))
                if not r.metric.startswith(("sent", "suppressed", "failed", "delivered"))
            }
        )
    assert stored == +whole


#: odd trace lines: (enrolment, rule, action, data); enrolment 1 exists, 999 was erased
ODD = [
    (1, 1, "enter", {"because": "x", "until": 5, "pc": None}),  # an entry into a wait at no known step
    (1, 1, "tag", {"tag": "t"}),  # leaves that wait
    (1, 1, "wait", {"pc": "2"}),  # a step that is no integer
    (1, 1, "send", {}),  # the outbox's note: the wait goes on
    (1, 1, "exit", {"pc": 1}),  # no reason: "unknown", ended where it waited
    (1, 1, "exit", {"reason": None, "pc": 99}),  # a null reason, past the last step
    (1, None, "wait", {"pc": 0}),  # no rule: not counted, not a wait
    (1, 1, "branch", {"step": 7}),
    (1, 1, "branch", {"step": "s9"}),
    (1, 1, "enter", ["until", "pc"]),  # data that is no object
    (1, 1, "enter", None),
    (1, 1, "wait", None),
    (1, 1, "split", {"arm": "B", "pc": 0}),
    (1, 1, "exit", {"reason": "goal", "pc": 0}),
    (999, 1, "enter", {"until": 1, "pc": 0}),
    (999, 1, "exit", {"reason": "completed"}),
    (2, 1, "wait", {"pc": 0, "until": 1}),
    (2, 1, "exit", {"reason": 3, "pc": 0}),
    (3, 1, "enter", {"until": None, "pc": 0}),
    (3, 1, "wait", {"pc": -1}),
    (None, 1, "enter", {}),
    (4, 1, "exit", {"reason": {"nested": [1]}}),
    (4, 1, "branch", {"step": None}),
    (5, 2, "enter", {"pc": 0, "until": 9}),
    (6, 1, "enter", {"because": "y"}),
    (6, 1, "score", {"delta": 1}),
    (6, 1, "exit", {"pc": 1}),  # no reason: "unknown"
    (7, 1, "enter", {"until": 4}),  # an entry into the first wait as written since migration 0041: no "pc"
    (7, 1, "exit", {"reason": None}),  # a null reason, no step
    (7, 1, "branch", {}),
]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 100])
def test_odd_trace_lines_count_the_same_both_ways(app, monkeypatch, size):
    load_rules(app, RULES)
    with app.app_context():
        session = get_session()
        session.execute(insert(Contact), [{"email": f"q{i}@example.com", "fields": {}} for i in range(7)])
        contacts = list(session.scalars(select(Contact.id).order_by(Contact.id)))
        versions = list(session.scalars(select(RuleVersion.id).order_by(RuleVersion.id)))
        session.execute(
            insert(Enrolment),
            [  # the fifth journey is of another rule's version
                {"rule_id": 1, "version_id": versions[i == 4], "contact_id": c, "pc": 0, "entered": 0}
                for i, c in enumerate(contacts)
            ],
        )
        enrolments = list(session.scalars(select(Enrolment.id).order_by(Enrolment.id)))
        for enr, rule, action, data in ODD:
            row = {"contact_id": contacts[0], "rule_id": rule, "at": 86400 * 3 + 5, "action": action, "data": data}
            row["enrolment_id"] = enrolments[enr - 1] if enr is not None and enr <= len(enrolments) else enr
            session.execute(insert(JourneyLog), [row])
        session.commit()
    reference, grouped, mixed = _folds(app, monkeypatch, size)
    assert grouped == reference  # batch by batch, in _folds
    assert reference and mixed  # something was counted, and some of it line by line


def test_an_sqlite_without_json_arrows_folds_every_journey_line_by_line(app, monkeypatch, backend):
    """SQLite before 3.38 has no ``->``: the rollup folds there as it always did, with the same counters."""
    import sqlite3

    people = _people(app, 4)
    _store(app, [(c, "form.submitted") for c in people])
    expected, _, _ = _folds(app, monkeypatch, 3)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 37, 2))
    if backend == "sqlite":

        def no_group_by(*args):
            raise AssertionError("grouped in SQL on an SQLite without ->")

        monkeypatch.setattr(rollup_trace, "_grouped", no_group_by)
    assert _folds(app, monkeypatch, 3)[1] == expected


def test_journeys_leaving_a_wait_are_counted_by_the_database_not_line_by_line(app, clock, monkeypatch):
    """Waits fired (each journey was waiting when its next line came, as when a million waits end) are counted by
    the database: the wait each one leaves (``left``, ``passed``) from its last older line and its first line of the
    batch; only a journey a goal ends where it waits (its exit counts at the wait) is folded line by line. The
    counters are those of the line by line fold."""
    people = _people(app, 6)
    _store(app, [(c, "form.submitted") for c in people])  # all wait 1d
    with app.app_context():
        after = get_session().scalar(select(func.max(JourneyLog.id)))
    _store(app, [(people[0], "order.placed")])  # its goal, where it waits
    clock.advance(timedelta(days=1, hours=1))
    with app.app_context():
        requeue_due()
    run_worker(app)
    monkeypatch.setattr(rollup_trace, "BATCH", 100_000)
    with app.app_context():
        session = get_session()
        last = session.scalar(select(func.max(JourneyLog.id)))
        goal = session.scalar(select(Enrolment.id).where(Enrolment.contact_id == people[0]))
        resumed: Counter = Counter()
        plans = rollup_trace._Plans(session)
        stateful = rollup_trace._stateful(session, after, *_conditions(after, last), resumed, plans)
        assert stateful == {goal}
        assert sorted((key[5], n) for key, n in resumed.items()) == [("left", 5), ("passed", 5)]
        assert len({key[2] for key in resumed}) == 1  # the wait's step
        assert journey_rows(session, after) == journey_rows(session, after, line_by_line=True)


def test_the_day_a_time_column_is_read_as_is_its_utc_day(app):
    """The outbox's, events' and attributions' rows are read by day (``date()`` in SQL), not as datetimes: each is
    the UTC day of its time, at either side of midnight, on SQLite (text) and PostgreSQL (a date)."""
    from datetime import UTC, datetime

    from server.engine.rollup import _day, _day_column

    times = [
        datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2040, 12, 31, 12, 30, tzinfo=UTC),
    ]
    (contact,) = _people(app, 1)
    with app.app_context():
        session = get_session()
        session.execute(insert(Event), [{"contact_id": contact, "name": "x.opened", "occurred_at": t} for t in times])
        days = session.scalars(select(_day_column(Event.occurred_at)).order_by(Event.id))
        assert [_day(day) for day in days] == [int(t.timestamp()) // 86400 for t in times]


def _clicks(app, clicks: list[tuple[int, str, str, bool]]) -> None:
    """Store *clicks*, in this order: (contact, event name, message key, by a machine)."""
    with app.app_context():
        session = get_session()
        rows = [
            {"contact_id": c, "name": name, "props": {"message": key, **({"machine": True} if machine else {})}}
            for c, name, key, machine in clicks
        ]
        session.execute(insert(Event), rows)
        session.commit()


def _per_step(app, metric: str) -> Counter:
    """The stored counters of *metric*, summed per step (the broadcasts' here: rule 0, step ``broadcast:<id>``)."""
    with app.app_context():
        totals: Counter = Counter()
        for row in get_session().scalars(select(StatCounter).where(StatCounter.metric == metric)):
            totals[row.step] += row.count
        return totals


def _clickers_one_by_one(app) -> Counter:
    """The clickers per step as the rollup counted them one click at a time: a human click counts a clicker when no
    earlier event (lower id) of the same contact and name is a human click on the same message."""
    from server.engine.keys import broadcast_of, broadcast_step

    with app.app_context():
        events = get_session().execute(select(Event.id, Event.contact_id, Event.name, Event.props)).all()
    clickers: Counter = Counter()
    for row in events:
        if not row.name.endswith(".clicked") or row.props.get("machine"):
            continue
        earlier = [e for e in events if (e.contact_id, e.name) == (row.contact_id, row.name) and e.id < row.id]
        if not any(e.props.get("message") == row.props["message"] and not e.props.get("machine") for e in earlier):
            clickers[broadcast_step(broadcast_of(row.props["message"]))] += 1
    return clickers


def test_clickers_count_each_person_s_first_human_click_on_a_message_across_and_within_batches(app):
    """A person's first human click on a message counts a clicker, found for the whole batch at once: a second click
    in the same batch, or one after a click of an older batch, counts none; a machine's click never hides a person's
    first; a click of another event name is another first (as the rollup has always counted them)."""
    a, b, c, d, e = (contact for contact in _people(app, 5))

    def key(broadcast: int, contact: int) -> str:
        return f"broadcast:{broadcast}:{contact}"

    # the older batch ends with c's click: the watermark is its id
    _clicks(app, [(e, "email.clicked", key(5, e), True), (c, "email.clicked", key(3, c), False)])
    with app.app_context():
        rollup(get_session(), limit=None)
    assert _per_step(app, "clickers") == {"broadcast:3": 1}
    _clicks(
        app,
        [
            (a, "email.clicked", key(1, a), False),
            (b, "email.clicked", key(2, b), False),
            (a, "email.clicked", key(1, a), False),  # a's second click on it, in the same batch
            (c, "email.clicked", key(3, c), False),  # c clicked it in the older batch
            (d, "email.clicked", key(4, d), True),  # a machine's click first
            (d, "email.clicked", key(4, d), False),
            (e, "email.clicked", key(5, e), False),  # after a machine's click in the older batch
            (a, "sms.clicked", key(1, a), False),  # another event name
            (b, "email.clicked", key(1, a), False),  # another person on a's message
            (b, "email.clicked", key(2, b), False),
        ],
    )
    with app.app_context():
        rollup(get_session(), limit=None)
    expected = {"broadcast:1": 3, "broadcast:2": 1, "broadcast:3": 1, "broadcast:4": 1, "broadcast:5": 1}
    assert _per_step(app, "clickers") == expected == _clickers_one_by_one(app)
    assert _per_step(app, "clicked:human") == {f"broadcast:{n}": k for n, k in ((1, 4), (2, 2), (3, 2), (4, 1), (5, 1))}
    assert _per_step(app, "clicked:machine") == {"broadcast:4": 1, "broadcast:5": 1}


def test_a_batch_of_clicks_runs_as_many_statements_however_many_people_clicked(app):
    """The first clicks of a batch are found in one query, not one per click: a newsletter's batch holds thousands."""
    from sqlalchemy import event

    people = _people(app, 41)
    engine = app.extensions["nudge.db"].engine

    def statements(contacts: list[int]) -> int:
        _clicks(app, [(c, "email.clicked", f"broadcast:9:{c}", False) for c in contacts])
        run: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany):
            run.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            with app.app_context():
                rollup(get_session(), limit=None)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(run)

    statements(people[:1])  # the watermarks are made
    assert statements(people[1:3]) == statements(people[3:41])
    assert _per_step(app, "clickers") == {"broadcast:9": 41}


def test_a_rollup_that_finds_nothing_new_ends_its_transaction(app):
    """Nothing new (from the start, or once caught up): the reading transaction is ended, not left open, and the
    caller's objects stay loaded (a rollback would expire them: one used after its session ends then fails)."""
    from sqlalchemy import inspect

    from server.models import Contact

    (contact,) = _people(app, 1)
    with app.app_context():
        session = get_session()
        person = session.get(Contact, contact)
        session.commit()
        assert rollup(session) == 0
        assert not session.in_transaction()
        assert not inspect(person).expired_attributes
    _clicks(app, [(contact, "email.clicked", f"broadcast:1:{contact}", False)])
    with app.app_context():
        session = get_session()
        assert rollup(session) > 0
        assert not session.in_transaction()


def test_a_rollup_that_loses_the_watermark_to_another_writes_nothing_and_ends_its_transaction(app):
    """Another rollup moved the watermark while this one read its batch: nothing is counted, nothing is left open."""
    from sqlalchemy import update

    from server.engine.rollup import _fold
    from server.models import Event, StatWatermark

    table = StatWatermark.__table__
    counts = Counter({(0, 0, "broadcast:1", "", 1, "clicked:human"): 1})

    def overtaken(session, after, upto):
        """This batch's rows, read while the watermark moved past them (as another rollup would)."""
        session.execute(update(table).where(table.c.source == "events").values(last_id=after + 3))
        return after + 5, counts

    with app.app_context():
        session = get_session()
        session.execute(table.insert().values(source="events", last_id=10))
        session.commit()
        assert _fold(session, "events", overtaken, Event.__table__) is None
        assert not session.in_transaction()
        # the other rollup's move stands (it counts what it took); this one counted nothing
        assert session.scalar(select(table.c.last_id).where(table.c.source == "events")) == 13
        assert session.scalar(select(func.count()).select_from(StatCounter)) == 0
