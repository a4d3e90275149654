"""PostgreSQL: real worker processes racing over the same due enrolments, every batch enqueued twice.

The leases (``due`` moved to a token) and ``SELECT … FOR UPDATE SKIP LOCKED`` must let exactly one
of two identical jobs advance each enrolment, however the two overlap.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select, text

from server.db import get_session
from server.engine.jobs import advance_enrolments, lease_due, process_events
from server.engine.timeutil import to_ts
from server.models import Enrolment, EnrolmentState, Event, JourneyLog, Message, utcnow
from server.queue import get_queue

from ..helpers import api_key, lock_waiters
from .journey import install_series, received, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]  # deselected unless --backends names postgresql

CONTACTS = 1000
BATCH = 100
TWO_STEPS = """rule "Series"
when signup.completed then
  send email a
  wait 1h
  send email b
end
"""


@pytest.fixture
def database_url(postgres_server):
    """PostgreSQL only: SQLite has a single writer, so there is no race to lose."""
    return postgres_server.new_database(f"race_{uuid.uuid4().hex[:8]}")


def _activity(session):
    return session.execute(
        text(
            "SELECT state, wait_event_type, wait_event, left(query, 100) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    ).all()


@pytest.mark.slow
def test_duplicate_batches_raced_by_three_workers_advance_each_enrolment_once(
    app, client, smtp_server, processes, clock
):
    install_series(app, TWO_STEPS)
    key = api_key(app)
    emails = [f"r{i:04d}@example.com" for i in range(CONTACTS)]
    response = client.post(
        "/api/v1/events/batch",
        headers={"Authorization": f"Bearer {key}"},
        json={"events": [{"contact": {"email": e}, "event": "signup.completed"} for e in emails]},
    )
    assert response.status_code == 202, response.json
    tq = get_queue(app)
    tq.redis.flushall()  # the test plays the first worker: it enrols everyone itself
    with app.app_context():
        session = get_session()
        process_events(list(session.scalars(select(Event.id))))
        clock.advance(3600)  # an hour later: every enrolment is due at its second send
        now = to_ts(utcnow())
        batches = []
        while ids := lease_due(session, now, BATCH, lease=600):
            batches.append((ids, now + 600))
        session.commit()
    assert sum(len(ids) for ids, _ in batches) == CONTACTS
    twins = [
        (tq.queue.enqueue(advance_enrolments, ids, lease), tq.queue.enqueue(advance_enrolments, ids, lease))
        for ids, lease in batches
    ]

    procs = processes(LOG_LEVEL="WARNING")
    with app.app_context():
        session = get_session()
        # hold back every outbox insert: the first worker to lock a batch waits while it holds the rows, so the
        # twin job meets rows locked by a live transaction, not ones already done
        session.execute(text("LOCK TABLE messages IN SHARE MODE"))
        workers = [procs.start("worker", "--burst") for _ in range(3)]
        wait_until(
            lambda: lock_waiters(session) >= 3 or all(w.poll() is not None for w in workers),
            60,
            lambda: f"workers did not reach the lock: {_activity(session)}\n{procs.tail()}",
        )
        session.commit()
    wait_until(lambda: all(w.poll() is not None for w in workers), 120, lambda: f"workers still busy\n{procs.tail()}")
    assert [w.returncode for w in workers] == [0, 0, 0], procs.tail()

    for q in tq.queues:
        assert FailedJobRegistry(queue=q).count == 0, procs.tail()
    for job in (job for pair in twins for job in pair):
        job.refresh()
    ran = [(first.return_value(), second.return_value()) for first, second in twins]
    assert [a + b for a, b in ran] == [len(ids) for ids, _ in batches], ran
    # the race happened: a twin finished, empty-handed, while the other still held the batch
    assert any(second.return_value() == 0 and second.ended_at < first.ended_at for first, second in twins), ran

    with app.app_context():
        session = get_session()
        states = Counter(session.scalars(select(Enrolment.state)))
        assert states == {EnrolmentState.DONE: CONTACTS}, states
        exits = Counter(session.scalars(select(JourneyLog.enrolment_id).where(JourneyLog.action == "exit")))
        assert len(exits) == CONTACTS and set(exits.values()) == {1}, exits.most_common(3)
        per_step = dict(session.execute(select(Message.template, func.count()).group_by(Message.template)).all())
        assert per_step == {"a": CONTACTS, "b": CONTACTS}
        statuses = Counter(session.scalars(select(Message.status)))
        session.rollback()
    assert statuses == {"sent": 2 * CONTACTS}, statuses
    got = received(smtp_server)
    assert got == Counter({(e, s): 1 for e in emails for s in ("a", "b")})
