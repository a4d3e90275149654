"""A process-events job claims pending events beyond its own (up to ``ENGINE_EVENT_BATCH``): a worker handles
events in large batches however they were enqueued, each exactly once, and a failing one is retried alone."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.app import create_app
from server.db import get_session
from server.engine import setwise
from server.engine.jobs import process_events, requeue_due
from server.engine.timeutil import to_ts
from server.engine.wake import process_pending
from server.hookspecs import hookimpl
from server.models import ContactTag, Enrolment, Event, utcnow
from server.plugins import DEFAULT_PLUGINS
from server.sdk import Action, ChannelError

from ..helpers import api_key, load_rules, post_event, run_worker

RULES = """rule "Welcome"
when order.paid then
  tag "buyer"
  crm_push "deals"
  wait 1d
end
"""


class CrmPush(Action):
    """A CRM push that refuses one contact, as a third-party plugin's step would."""

    name = "crm_push"

    def run(self, contact, args):
        if contact["email"].startswith("refused"):
            raise ChannelError("the CRM answered 422 Unprocessable Entity")


class CrmPlugin:
    name = "crm"

    @hookimpl
    def register_actions(self, config):
        return [CrmPush()]


@pytest.fixture
def app(config):
    app = create_app({**config, "PLUGINS": (*DEFAULT_PLUGINS, CrmPlugin()), "ENGINE_EVENT_BATCH": 3})
    app.config["TESTING"] = True
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


def _stored(app, client, emails: list[str]) -> list[int]:
    """Post one ``order.paid`` per address (each API request enqueues its own job); return the events' ids."""
    key = api_key(app)
    for email in emails:
        assert post_event(client, key, email=email, event="order.paid").status_code == 202
    with app.app_context():
        return list(get_session().scalars(select(Event.id).where(Event.name == "order.paid").order_by(Event.id)))


def _count(app, model, *where) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(model).where(*where))


def test_a_job_of_one_event_takes_other_pending_events_up_to_the_batch_and_their_jobs_find_nothing(app, client):
    load_rules(app, RULES.replace('  crm_push "deals"\n', ""))
    ids = _stored(app, client, [f"c{i}@example.com" for i in range(5)])
    with app.app_context():
        assert process_events([ids[3]]) == 3  # its own, then the two oldest pending: a batch of 3
        processed = set(get_session().scalars(select(Event.id).where(Event.processed_at.is_not(None))))
    assert processed & set(ids) == {ids[0], ids[1], ids[3]}
    run_worker(app)  # the five API jobs: two find their events still pending, three find nothing left
    assert _count(app, Event, Event.name == "order.paid", Event.processed_at.is_(None)) == 0
    assert _count(app, Enrolment) == 5, "each event enrolled its contact once"
    assert _count(app, ContactTag, ContactTag.tag == "buyer") == 5


def test_a_failing_event_among_those_taken_is_retried_alone_and_the_others_are_done(app, client):
    load_rules(app, RULES)
    ids = _stored(app, client, ["a@example.com", "refused@example.com", "b@example.com"])
    with app.app_context():
        assert process_events([ids[2]]) == 2
    with app.app_context():
        session = get_session()
        events = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(ids)))}
        refused = events[ids[1]]
        assert (refused.processed_at, refused.attempts) == (None, 1)
        assert refused.error == "ChannelError: the CRM answered 422 Unprocessable Entity"
        assert refused.retry_at is not None
        assert events[ids[0]].processed_at is not None and events[ids[2]].processed_at is not None
        # the failed event's journey was rolled back with it; the others' journeys stand
        assert session.scalar(select(func.count()).select_from(Enrolment)) == 2
    run_worker(app)  # the API's jobs: the refused event waits out its back-off, nothing is done twice
    assert _count(app, Enrolment) == 2
    assert _count(app, Event, Event.id == ids[1], Event.attempts == 1, Event.processed_at.is_(None)) == 1


# --- one waiting job for a burst of API events (server/engine/wake.py) ---


def _jobs(app) -> list[str]:
    return [job.func_name for job in app.extensions["nudge.queue"].queue.get_jobs()]


def test_a_burst_shares_one_job_and_a_full_batch_queues_the_next(app, client):
    load_rules(app, RULES.replace('  crm_push "deals"\n', ""))
    _stored(app, client, [f"c{i}@example.com" for i in range(7)])
    assert _jobs(app) == ["server.engine.wake.process_pending"]
    run_worker(app)  # batches of 3: the job takes 3 and queues the next, which takes 3, and the last takes 1
    assert _count(app, Event, Event.name == "order.paid", Event.processed_at.is_(None)) == 0
    assert _count(app, Enrolment) == 7, "each event enrolled its contact once"
    assert _jobs(app) == []


def test_a_full_batch_queues_the_next_job_before_working_on_its_events(app, client, monkeypatch):
    """So that another worker claims the next batch meanwhile (two workers share a burst), not after this one."""
    load_rules(app, RULES.replace('  crm_push "deals"\n', ""))
    _stored(app, client, [f"c{i}@example.com" for i in range(4)])
    queued: list[list[str]] = []
    process = setwise.process

    def watched(ctx, events):
        queued.append(_jobs(app))
        return process(ctx, events)

    monkeypatch.setattr(setwise, "process", watched)
    with app.app_context():
        assert process_pending() == 3  # as the worker runs the waiting job (still on this test's queue)
    assert queued == [["server.engine.wake.process_pending"] * 2], "queued before the batch is worked on"
    run_worker(app)
    assert _count(app, Event, Event.name == "order.paid", Event.processed_at.is_(None)) == 0
    assert _count(app, Enrolment) == 4


def test_events_stored_once_the_job_has_started_queue_a_job_of_their_own(app, client):
    load_rules(app, RULES.replace('  crm_push "deals"\n', ""))
    _stored(app, client, ["a@example.com"])
    with app.app_context():
        assert process_pending() == 1  # as the worker runs the waiting job: the flag is cleared, then the claim
    _stored(app, client, ["b@example.com"])
    assert _jobs(app) == ["server.engine.wake.process_pending"] * 2  # the first (now empty-handed) and a new one
    run_worker(app)
    assert _count(app, Event, Event.name == "order.paid", Event.processed_at.is_(None)) == 0
    assert _count(app, Enrolment) == 2


def test_a_job_lost_with_its_flag_set_loses_no_event(app, client):
    load_rules(app, RULES.replace('  crm_push "deals"\n', ""))
    _stored(app, client, ["a@example.com"])
    app.extensions["nudge.queue"].queue.empty()  # the job is gone; its flag still says one waits
    _stored(app, client, ["b@example.com"])
    assert _jobs(app) == []
    with app.app_context():
        later = to_ts(utcnow()) + app.config["REQUEUE_AFTER"] + 1
        assert requeue_due(now=later)["events"] == 2  # the scheduler finds them in the database
    run_worker(app)
    assert _count(app, Event, Event.name == "order.paid", Event.processed_at.is_(None)) == 0
    assert _count(app, Enrolment) == 2
