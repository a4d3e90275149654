"""A process-events job claims pending events beyond its own (up to ``ENGINE_EVENT_BATCH``): a worker handles
events in large batches however they were enqueued, each exactly once, and a failing one is retried alone."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.app import create_app
from server.db import get_session
from server.engine.jobs import process_events
from server.hookspecs import hookimpl
from server.models import ContactTag, Enrolment, Event
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
