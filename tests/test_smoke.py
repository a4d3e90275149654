"""The vertical slice: event in over the API -> stored -> RQ job -> rule -> email at a real SMTP server."""

from datetime import timedelta

from sqlalchemy import func, select

from server.db import get_session
from server.engine.jobs import deliver_messages, process_events, requeue_due
from server.models import Event, Message
from server.queue import get_queue

from .helpers import api_key, load_rules, post_event, run_worker


def test_form_submission_delivers_the_welcome_email(app, client, smtp_server):
    load_rules(app)
    key = api_key(app)
    response = post_event(client, key, email="Ana@Example.com", form="newsletter")
    assert response.status_code == 202, response.json
    with app.app_context():
        event = get_session().get(Event, response.json["id"])
        assert event.name == "form.submitted" and event.props == {"form": "newsletter"}
        assert event.processed_at is None  # not yet: the worker does it
    run_worker(app)
    [msg] = smtp_server.wait_for(1)
    assert msg["To"] == "ana@example.com"
    assert msg["Subject"] == "Welcome!"
    assert "thanks for signing up" in msg.get_body(("plain",)).get_content()
    assert msg.get_body(("html",)) is not None
    with app.app_context():
        row = get_session().scalar(select(Message))
        assert row.status == "sent" and row.provider_id == msg["Message-ID"].strip()


def test_other_events_send_nothing(app, client, smtp_server):
    load_rules(app)
    assert post_event(client, api_key(app), event="page.visited").status_code == 202
    run_worker(app)
    assert smtp_server.messages == []


def test_a_job_delivered_twice_sends_once(app, client, smtp_server):
    load_rules(app)
    response = post_event(client, api_key(app))
    event_id = response.json["id"]
    get_queue(app).enqueue(process_events, [event_id])  # a duplicate delivery of the same job
    run_worker(app)
    smtp_server.wait_for(1)
    with app.app_context():
        requeue_due()
    run_worker(app)
    assert len(smtp_server.messages) == 1


def test_flushing_redis_loses_nothing(app, client, smtp_server):
    load_rules(app)
    app.config["REQUEUE_AFTER"] = 0.001
    post_event(client, api_key(app), email="b@example.com")
    get_queue(app).redis.flushall()  # the queued job is gone; the database still knows
    run_worker(app)
    assert smtp_server.messages == []
    with app.app_context():
        assert requeue_due()["events"] == 1
    run_worker(app)
    [msg] = smtp_server.wait_for(1)
    assert msg["To"] == "b@example.com"


def test_smtp_outage_retries_later_and_delivers_once(app, client, smtp_server, clock):
    load_rules(app)
    smtp_server.handler.reject_with = "451 4.3.0 try again later"
    post_event(client, api_key(app), email="c@example.com")
    run_worker(app)
    with app.app_context():
        row = get_session().scalar(select(Message))
        assert row.status == "pending" and row.attempts == 1 and "451" in row.error
        assert row.next_attempt_at > row.created_at
    smtp_server.handler.reject_with = None
    with app.app_context():
        assert requeue_due()["messages"] == 0, "the retry waits out its back-off"
    clock.advance(timedelta(hours=1))
    with app.app_context():
        assert requeue_due()["messages"] == 1
    run_worker(app)
    assert len(smtp_server.wait_for(1)) == 1
    with app.app_context():
        assert get_session().scalar(select(func.count()).where(Message.status == "sent")) == 1


def test_permanent_smtp_rejection_fails_without_retry(app, client, smtp_server):
    load_rules(app)
    smtp_server.handler.reject_with = "550 5.1.1 no such user"
    post_event(client, api_key(app), email="gone@example.com")
    run_worker(app)
    with app.app_context():
        row = get_session().scalar(select(Message))
        assert row.status == "failed" and "550" in row.error


def test_a_duplicate_delivery_job_waits_out_the_back_off(app, client, smtp_server):
    load_rules(app)
    smtp_server.handler.reject_with = "451 4.3.0 try again later"
    post_event(client, api_key(app), email="d@example.com")
    run_worker(app)
    smtp_server.handler.reject_with = None
    with app.app_context():
        row = get_session().scalar(select(Message))
        assert row.status == "pending" and row.attempts == 1
    get_queue(app).enqueue_send(deliver_messages, [row.id])  # e.g. the scheduler's copy of a job that was slow
    run_worker(app)
    assert smtp_server.messages == []
    with app.app_context():
        row = get_session().scalar(select(Message))
        assert row.status == "pending" and row.attempts == 1
