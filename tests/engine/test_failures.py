"""An error never counts as done: a journey step that fails for real (a plugin's CRM is down, an outbox row that
cannot be written) leaves its event or enrolment unprocessed, retried after a back-off on the engine clock, and
parked with its error after ``MAX_ATTEMPTS`` tries, where ``nudge messages``, ``nudge explain`` and /healthz show it."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from server.app import create_app
from server.db import get_session
from server.engine.apply import replan_timers
from server.engine.jobs import requeue_due
from server.engine.render import save_template
from server.engine.rules import RuleChange
from server.engine.timeutil import to_ts
from server.hookspecs import hookimpl
from server.models import Enrolment, EnrolmentState, Event, Message, RuleVersion, ScheduleTimer, utcnow
from server.plugins import DEFAULT_PLUGINS
from server.sdk import Action, ChannelError

from ..helpers import api_key, latest, post_event, run_worker

TRIES = 3


class CrmPush(Action):
    """A CRM push that fails while the CRM is down, as a third-party plugin's step would."""

    name = "crm_push"

    def __init__(self) -> None:
        self.down = True
        self.pushed: list[str] = []

    def run(self, contact, args):
        if self.down:
            raise ChannelError("the CRM answered 503 Service Unavailable")
        self.pushed.append(contact["email"])


class CrmPlugin:
    name = "crm"

    def __init__(self) -> None:
        self.crm = CrmPush()

    @hookimpl
    def register_actions(self, config):
        return [self.crm]


@pytest.fixture
def plugin():
    return CrmPlugin()


@pytest.fixture
def crm(plugin):
    return plugin.crm


@pytest.fixture
def app(config, plugin):
    app = create_app({**config, "PLUGINS": (*DEFAULT_PLUGINS, plugin), "MAX_ATTEMPTS": TRIES})
    app.config["TESTING"] = True
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


def install(app, client, rule: str) -> None:
    with app.app_context():
        save_template(get_session(), "email", "thanks", {"subject": "Thanks", "txt": "Thanks, {{ contact.email }}"})
        get_session().commit()
    response = client.put(
        "/api/v1/rules", json={"text": rule}, headers={"Authorization": f"Bearer {api_key(app, 'admin')}"}
    )
    assert response.status_code == 200, response.json


def event_row(app, name: str = "order.paid") -> Event:
    return latest(app, Event, Event.name == name)


def tick(app, now: int) -> dict:
    """One scheduler tick on the engine clock *now*, then a real worker runs what it enqueued."""
    with app.app_context():
        counts = requeue_due(now=now)
    run_worker(app)
    return counts


SEND_THEN_PUSH = 'rule "Order follow-up"\nwhen order.paid then\n  send email thanks\n  crm_push "deals"\nend\n'


def test_a_failing_step_leaves_its_event_unprocessed_and_retries_it_after_a_back_off(app, client, crm, smtp_server):
    install(app, client, SEND_THEN_PUSH)
    post_event(client, api_key(app), email="ana@example.com", event="order.paid")
    run_worker(app)  # the API's job: the CRM is down

    first = event_row(app)
    assert first.processed_at is None, "a failed event is not processed"
    assert (first.attempts, first.parked_at) == (1, None)
    assert first.error == "ChannelError: the CRM answered 503 Service Unavailable"
    retry = to_ts(first.retry_at)
    assert retry > to_ts(first.received_at)

    assert tick(app, retry - 1)["events"] == 0, "tried again before its back-off"
    assert event_row(app).attempts == 1
    assert tick(app, retry)["events"] == 1
    second = event_row(app)
    assert (second.processed_at, second.attempts) == (None, 2)
    assert to_ts(second.retry_at) > retry, "the back-off starts again from the failed try"

    crm.down = False  # the cause is fixed
    assert tick(app, to_ts(second.retry_at))["events"] == 1
    assert event_row(app).processed_at is not None
    assert crm.pushed == ["ana@example.com"]
    # the send before the failing step was rolled back with each failed try: it went out once, at the end
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Thanks"]
    tick(app, to_ts(second.retry_at) + 3600)
    assert len(smtp_server.messages) == 1


def test_an_event_that_keeps_failing_is_parked_with_its_error_until_an_operator_unparks_it(
    app, client, crm, smtp_server, runner
):
    install(app, client, SEND_THEN_PUSH)
    post_event(client, api_key(app), email="bob@example.com", event="order.paid")
    run_worker(app)
    for _ in range(TRIES - 1):
        tick(app, to_ts(event_row(app).retry_at))
    parked = event_row(app)
    assert parked.processed_at is None and parked.parked_at is not None and parked.retry_at is None
    assert parked.attempts == TRIES
    assert tick(app, to_ts(utcnow()) + 30 * 86400)["events"] == 0, "a parked event is never tried on its own"

    listing = runner.invoke(["messages"]).output
    assert (
        f"event {parked.id}\tparked\torder.paid\tcontact {parked.contact_id}\tattempts={TRIES}\t"
        "ChannelError: the CRM answered 503 Service Unavailable" in listing
    )
    health = client.get("/healthz?details=1", headers={"Authorization": f"Bearer {api_key(app, 'admin')}"})
    assert health.status_code == 200 and health.json["status"] == "degraded", health.json
    assert health.json["checks"]["delivery"]["engine"]["parked_events"] == 1
    assert smtp_server.messages == []

    crm.down = False
    assert runner.invoke(["messages", "unpark"]).output.startswith("1 event(s) and 0 journey(s)")
    assert tick(app, to_ts(utcnow()))["events"] == 1
    assert event_row(app).processed_at is not None
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Thanks"]
    assert "nothing needs a look" in runner.invoke(["messages"]).output
    assert client.get("/healthz").json["status"] == "ok"


WAIT_THEN_PUSH = (
    'rule "Order follow-up"\nwhen order.paid then\n  wait 1d\n  send email thanks\n  crm_push "deals"\nend\n'
)


def test_a_journey_step_that_fails_is_retried_with_back_off_then_parked_and_resumed_when_fixed(
    app, client, crm, smtp_server, runner
):
    install(app, client, WAIT_THEN_PUSH)
    post_event(client, api_key(app), email="cy@example.com", event="order.paid")
    run_worker(app)
    due = latest(app, Enrolment).due
    assert event_row(app).processed_at is not None, "the event itself went through: the journey waits a day"

    tick(app, due)  # the day has passed: the step after the wait fails
    failed = latest(app, Enrolment)
    assert (failed.state, failed.pc, failed.attempts) == (EnrolmentState.ACTIVE, 1, 1)
    assert failed.error == "ChannelError: the CRM answered 503 Service Unavailable"
    assert failed.due > due, "due again after a back-off, not after the 120 s lease"
    assert tick(app, failed.due - 1)["enrolments"] == 0
    for attempt in range(2, TRIES + 1):
        assert tick(app, latest(app, Enrolment).due)["enrolments"] == 1
        assert latest(app, Enrolment).attempts == attempt
    parked = latest(app, Enrolment)
    assert (parked.state, parked.pc) == (EnrolmentState.PARKED, 1)
    assert tick(app, parked.due + 30 * 86400)["enrolments"] == 0
    assert smtp_server.messages == [], "each failed try took its send back with it"
    assert f"journey {parked.id}\tparked\tOrder follow-up step 1" in runner.invoke(["messages"]).output
    explained = runner.invoke(["explain", "cy@example.com"]).output.splitlines()
    assert explained[-1] == (
        f"now parked in Order follow-up after {TRIES} failed tries: "
        "ChannelError: the CRM answered 503 Service Unavailable "
        "(`nudge messages unpark` tries again)"
    )

    crm.down = False
    assert runner.invoke(["messages", "unpark", "--journey", str(parked.id)]).exit_code == 0
    assert tick(app, to_ts(utcnow()))["enrolments"] == 1
    done = latest(app, Enrolment)
    assert (done.state, done.attempts, done.error) == (EnrolmentState.DONE, None, None)
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Thanks"]
    assert crm.pushed == ["cy@example.com"]


def test_an_outbox_row_that_cannot_be_written_is_retried_not_dropped(app, client, smtp_server):
    """The issue's own case: ``UNIQUE constraint failed: messages.key`` once made the engine drop the welcome."""
    install(app, client, 'rule "Thanks"\nwhen order.paid then\n  send email thanks\nend\n')
    with app.app_context():
        session = get_session()
        step = session.scalar(select(RuleVersion.plan)).get("steps")[0]["id"]
        # rows kept from erased contacts hold the keys the next journeys would get
        session.add_all(
            Message(key=f"enr:{n}:{step}", channel="email", template="thanks", status="sent") for n in range(1, 21)
        )
        session.commit()
    post_event(client, api_key(app), email="dee@example.com", event="order.paid")
    run_worker(app)
    failed = event_row(app)
    assert failed.processed_at is None and failed.attempts == 1
    assert "messages" in failed.error and "key" in failed.error, failed.error

    with app.app_context():
        get_session().execute(delete(Message).where(Message.contact_id.is_(None)))
        get_session().commit()
    assert tick(app, to_ts(failed.retry_at))["events"] == 1
    assert event_row(app).processed_at is not None
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["dee@example.com"]


SCHEDULED = 'rule "Daily sync"\nwhen every day at 09:00 then\n  crm_push "deals"\n  send email thanks\nend\n'


def test_a_journey_a_schedule_starts_carries_its_own_failure_and_the_schedule_goes_on(app, client, crm, smtp_server):
    post_event(client, api_key(app), email="eve@example.com", event="page.viewed")  # a contact the schedule reaches
    run_worker(app)
    install(app, client, SCHEDULED)
    with app.app_context():  # as `nudge apply` does after saving rules
        replan_timers(get_session(), app, [RuleChange("Daily sync", "create")])
        get_session().commit()
    timer = latest(app, ScheduleTimer)
    assert tick(app, timer.due)["timers"] == 1  # 09:00: the CRM is down
    entered = latest(app, Enrolment)
    assert (entered.state, entered.pc, entered.attempts) == (EnrolmentState.ACTIVE, 0, 1)
    assert entered.error == "ChannelError: the CRM answered 503 Service Unavailable" and entered.due > timer.due
    assert latest(app, ScheduleTimer).due == timer.due + 86400, "the schedule fired; tomorrow comes as planned"

    crm.down = False
    assert tick(app, entered.due)["enrolments"] == 1
    assert latest(app, Enrolment).state == EnrolmentState.DONE
    assert crm.pushed == ["eve@example.com"]
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["eve@example.com"]
