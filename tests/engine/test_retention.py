"""Retention: the cleanup deletes what is past its age on the engine's clock, batch by batch, and keeps what is
still needed (journeys in flight, unfinished sends, each contact's latest journey, the stats' numbers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.auth import create_api_key
from server.db import get_session
from server.engine.retention import Cleanup, clean
from server.engine.timeutil import to_ts
from server.models import (
    AdminSession,
    ApiKey,
    Consent,
    Contact,
    Enrolment,
    EnrolmentState,
    Event,
    IdempotencyRecord,
    JourneyLog,
    Message,
    MessageStatusChange,
    ProviderReceipt,
    StatWatermark,
    Suppression,
    utcnow,
)

from ..helpers import api_key, load_rules, make_user, post_event, run_worker

DAYS = 30
TRACKING_DAYS = 20


@pytest.fixture
def retained(app):
    """The app with short retention ages (the defaults are hundreds of days; the boundary is what matters)."""
    for key in (
        "RETAIN_EVENTS_DAYS",
        "RETAIN_JOURNEY_LOG_DAYS",
        "RETAIN_ENROLMENTS_DAYS",
        "RETAIN_MESSAGES_DAYS",
        "RETAIN_RECEIPTS_DAYS",
    ):
        app.config[key] = DAYS
    app.config["RETAIN_TRACKING_DAYS"] = TRACKING_DAYS
    return app


def _generation(session, tag: str, contact: Contact, api_key_id: int, user_id: int) -> dict[str, int]:
    """One row in every table the cleanup walks, written now by the engine's clock; return their ids."""
    now = utcnow()
    ts = to_ts(now)
    ids: dict[str, int] = {}
    event = Event(contact_id=contact.id, name="form.submitted", props={}, received_at=now, processed_at=now)
    opened = Event(contact_id=contact.id, name="email.opened", props={}, received_at=now, processed_at=now)
    session.add_all([event, opened])
    # a journey that finished here, followed by a newer one of the same contact in the same rule
    done = Enrolment(
        contact_id=contact.id, rule_id=1, version_id=1, state=EnrolmentState.DONE.value, entered=ts, finished=ts
    )
    session.add(done)
    session.flush()
    log = JourneyLog(
        enrolment_id=done.id, contact_id=contact.id, rule_id=1, at=ts, action="exit", data={"reason": "completed"}
    )
    message = Message(
        key=f"enr:{done.id}:s{tag}",
        contact_id=contact.id,
        channel="email",
        template="welcome",
        status="sent",
        created_at=now,
    )
    session.add_all([log, message])
    session.flush()
    change = MessageStatusChange(message_id=message.id, status="sent", at=now)
    receipt = ProviderReceipt(channel="sms", receipt=f"SM{tag}", received_at=now)
    idem = IdempotencyRecord(
        api_key_id=api_key_id,
        key=f"k{tag}",
        endpoint="POST /api/v1/events",
        request_hash="x",
        status_code=202,
        response={},
        created_at=now,
    )
    admin = AdminSession(user_id=user_id, token_hash=f"{tag:0>64}", created_at=now, last_seen_at=now)
    session.add_all([change, receipt, idem, admin])
    session.flush()
    ids.update(
        events=event.id,
        tracking=opened.id,
        enrolments=done.id,
        journey_log=log.id,
        messages=message.id,
        message_status_changes=change.id,
        provider_receipts=receipt.id,
        idempotency_keys=idem.id,
        admin_sessions=admin.id,
    )
    session.commit()
    return ids


MODELS = {
    "events": Event,
    "tracking": Event,
    "enrolments": Enrolment,
    "journey_log": JourneyLog,
    "messages": Message,
    "message_status_changes": MessageStatusChange,
    "provider_receipts": ProviderReceipt,
    "idempotency_keys": IdempotencyRecord,
    "admin_sessions": AdminSession,
}


def _alive(session, ids: dict[str, int]) -> set[str]:
    session.rollback()
    return {name for name, row_id in ids.items() if session.get(MODELS[name], row_id) is not None}


def _move_to(clock, instant) -> None:
    clock.advance((instant - clock()).total_seconds())


def test_each_table_loses_the_row_just_older_than_its_age_and_keeps_the_one_just_newer(retained, clock):
    app = retained
    user_id = make_user(app, "ops@example.com")
    with app.app_context():
        session = get_session()
        create_api_key(session, "ingest")
        key_id = session.scalar(select(ApiKey.id))
        contact = Contact(email="ana@example.com")
        session.add(contact)
        session.commit()
        start = utcnow()
        older = _generation(session, "1", contact, key_id, user_id)
        clock.advance(2)
        newer = _generation(session, "2", contact, key_id, user_id)
        # the latest journey of the contact in rule 1: never deleted (entry policies read it)
        latest = Enrolment(
            contact_id=contact.id,
            rule_id=1,
            version_id=1,
            state=EnrolmentState.EXITED.value,
            entered=to_ts(utcnow()),
            finished=to_ts(utcnow()),
        )
        session.add(latest)
        session.commit()
        everything = set(MODELS)

        _move_to(clock, start + timedelta(days=7, seconds=1))  # stored Idempotency-Key answers: 7 days
        clean(session, app.config)
        assert _alive(session, older) == everything - {"idempotency_keys"}
        assert _alive(session, newer) == everything

        _move_to(clock, start + timedelta(days=TRACKING_DAYS, seconds=1))
        clean(session, app.config)
        assert _alive(session, older) == everything - {"idempotency_keys", "tracking"}
        assert _alive(session, newer) == everything - {"idempotency_keys"}

        _move_to(clock, start + timedelta(days=DAYS, seconds=1))  # the RETAIN_* ages, and admin sessions' 30 days
        counts = clean(session, app.config)
        assert _alive(session, older) == set()
        assert _alive(session, newer) == everything - {"idempotency_keys", "tracking"}
        assert session.get(Enrolment, latest.id) is not None
        assert counts["events"] == 1 and counts["messages"] == 1 and counts["enrolments"] == 1


def test_journeys_in_flight_unfinished_sends_consent_and_suppressions_are_kept(retained, clock):
    app = retained
    with app.app_context():
        session = get_session()
        contact = Contact(email="ben@example.com")
        session.add(contact)
        session.flush()
        now = utcnow()
        ts = to_ts(now)
        started = Event(contact_id=contact.id, name="form.submitted", props={}, received_at=now, processed_at=now)
        unprocessed = Event(contact_id=contact.id, name="form.submitted", props={}, received_at=now)
        session.add_all([started, unprocessed])
        session.flush()
        waiting = [
            Enrolment(
                contact_id=contact.id,
                rule_id=rule,
                version_id=rule,
                state=state.value,
                entered=ts,
                due=ts,
                event_id=started.id,
            )
            for rule, state in ((1, EnrolmentState.ACTIVE), (2, EnrolmentState.HELD), (3, EnrolmentState.PARKED))
        ]
        session.add_all(waiting)
        session.flush()
        trace = [
            JourneyLog(enrolment_id=e.id, contact_id=contact.id, rule_id=e.rule_id, at=ts, action="enter", data={})
            for e in waiting
        ]
        sent = Message(
            key=f"enr:{waiting[0].id}:s1",
            contact_id=contact.id,
            channel="email",
            template="t",
            status="sent",
            created_at=now,
        )
        pending = Message(
            key="bc:1:1", contact_id=contact.id, channel="email", template="t", status="pending", created_at=now
        )
        unknown = Message(
            key="bc:1:2", contact_id=contact.id, channel="email", template="t", status="unknown", created_at=now
        )
        consent = Consent(contact_id=contact.id, channel="email", status="granted", source="form", recorded_at=now)
        suppression = Suppression(channel="email", address_hash="ab" * 32, reason="bounced", created_at=now)
        session.add_all([*trace, sent, pending, unknown, consent, suppression])
        session.commit()
        kept = [
            (Event, started.id),
            (Event, unprocessed.id),
            *((Enrolment, e.id) for e in waiting),
            *((JourneyLog, t.id) for t in trace),
            (Message, sent.id),
            (Message, pending.id),
            (Message, unknown.id),
            (Consent, consent.id),
            (Suppression, suppression.id),
        ]

        clock.advance(timedelta(days=1000))
        clean(session, app.config)
        session.rollback()
        assert [(model.__name__, row_id) for model, row_id in kept if session.get(model, row_id) is None] == []


def _processed_events(app, count: int, email: str) -> None:
    """*count* processed events of a new contact, received now by the engine's clock."""
    with app.app_context():
        session = get_session()
        contact = Contact(email=email)
        session.add(contact)
        session.flush()
        session.add_all(
            Event(contact_id=contact.id, name="page.viewed", props={}, received_at=utcnow(), processed_at=utcnow())
            for _ in range(count)
        )
        session.commit()


def _events_left(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(Event))


def test_more_rows_than_a_batch_are_deleted_in_several_transactions(retained, clock):
    _processed_events(retained, 11, "cy@example.com")
    clock.advance(timedelta(days=DAYS, seconds=1))
    _processed_events(retained, 1, "cy2@example.com")
    with retained.app_context():
        session = get_session()
        batches = [count for table, count in Cleanup(session, retained.config, batch=3).run() if table == "events"]
    assert batches == [3, 3, 3, 2]
    assert _events_left(retained) == 1  # the young one


def test_rows_the_rollup_has_not_counted_stay_until_it_has(retained, clock):
    _processed_events(retained, 3, "fay@example.com")
    clock.advance(timedelta(days=DAYS, seconds=1))
    with retained.app_context():
        session = get_session()
        ids = sorted(session.scalars(select(Event.id)))
        session.add(StatWatermark(source="events", last_id=ids[1]))  # the rollup has read the first two
        session.commit()
        clean(session, retained.config, roll_up=False)  # the scheduler's cleanup: it stops at the watermark
        assert sorted(session.scalars(select(Event.id))) == ids[2:]
        clean(session, retained.config)  # by hand: the rollup runs to the end first
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_dry_run_counts_and_the_cli_deletes_with_counts_per_table(retained, clock, runner, monkeypatch):
    monkeypatch.setenv("NUDGE_RETAIN_EVENTS_DAYS", str(DAYS))
    _processed_events(retained, 4, "di@example.com")
    clock.advance(timedelta(days=DAYS, seconds=1))
    dry = runner.invoke(["cleanup", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "events                   would delete          4  (older than 30 days)" in dry.output
    assert _events_left(retained) == 4
    real = runner.invoke(["cleanup"])
    assert real.exit_code == 0, real.output
    assert "events                   deleted          4  (older than 30 days)" in real.output
    assert _events_left(retained) == 0


def test_the_scheduler_runs_the_cleanup(retained, clock, runner, monkeypatch):
    monkeypatch.setenv("NUDGE_RETAIN_EVENTS_DAYS", str(DAYS))
    _processed_events(retained, 1, "ed@example.com")
    clock.advance(timedelta(days=DAYS, seconds=1))
    result = runner.invoke(["scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert _events_left(retained) == 0


RULE = (
    'rule "Welcome"\n  always\nwhen form.submitted then\n  send email welcome\n  wait 1d\n  send email welcome\nend\n'
)


def test_stats_are_the_same_before_and_after_the_raw_rows_go(retained, client, clock, runner, smtp_server):
    app = retained
    load_rules(app, RULE)
    key = api_key(app)
    for address in ("a@example.com", "b@example.com", "a@example.com"):
        assert post_event(client, key, email=address).status_code == 202
    run_worker(app)
    clock.advance(timedelta(days=1, seconds=5))
    runner.invoke(["scheduler", "--once"])
    run_worker(app)
    smtp_server.wait_for(6)
    runner.invoke(["scheduler", "--once"])  # the rollup counts the last sends
    before = runner.invoke(["stats", "Welcome"])
    assert before.exit_code == 0 and "entered 3" in before.output, before.output

    clock.advance(timedelta(days=401))  # past the default ages (400 days)
    cleaned = runner.invoke(["cleanup"])
    assert cleaned.exit_code == 0, cleaned.output
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count()).select_from(Event)) == 0
        assert session.scalar(select(func.count()).select_from(JourneyLog)) == 0
        assert session.scalar(select(func.count()).select_from(Message)) == 0
        assert session.scalar(select(func.count()).select_from(Enrolment)) == 2  # each contact's latest journey
    after = runner.invoke(["stats", "Welcome"])
    assert after.output == before.output
