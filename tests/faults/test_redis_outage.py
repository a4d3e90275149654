"""Fast recovery from a Redis outage: a tick that cannot enqueue gives its leases back at once, the first tick after
Redis returns enqueues what was stored meanwhile and the jobs of batches leased before, and workers and the
scheduler (real processes) outlive a real Redis stopped and started again. The recovery time after Redis returns is
printed, never asserted."""

from __future__ import annotations

import time

import pytest

from server.engine.jobs import process_events, requeue_due
from server.models import Enrolment, Message
from server.queue import get_queue

from ..helpers import api_key, latest, load_rules, post_event, run_worker
from .journey import assert_exactly_once, counts, install_series, recipients, wait_until

LATER = 'rule "Later"\nwhen form.submitted then\n  wait 1h\n  send email welcome\nend\n'


def _refuse_writes(app, refuse: bool) -> None:
    """Redis out of memory: it answers PING and reads, and refuses every write (an enqueue among them)."""
    redis = get_queue(app).redis
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 1 if refuse else 0)


def test_a_tick_that_cannot_enqueue_gives_its_leases_back_at_once(app, client, smtp_server, redis_server):
    load_rules(app, LATER)
    post_event(client, api_key(app), email="ana@example.com")
    run_worker(app)
    due = latest(app, Enrolment).due

    _refuse_writes(app, True)
    try:
        with app.app_context():
            tick = requeue_due(now=due)
    finally:
        _refuse_writes(app, False)
    assert tick["enrolments"] == 0
    assert latest(app, Enrolment).due == due, "due again now, not when a 120 s lease runs out"

    with app.app_context():
        assert requeue_due(now=due)["enrolments"] == 1  # Redis takes writes again: the very next tick
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["ana@example.com"]


def test_a_due_send_whose_job_cannot_be_enqueued_is_not_held_back(app, client, smtp_server, redis_server):
    load_rules(app)
    event_id = post_event(client, api_key(app), email="bo@example.com").json["id"]
    _refuse_writes(app, True)
    try:
        with app.app_context():
            assert process_events([event_id]) == 1  # the journey ran; its send job could not be enqueued
            assert requeue_due()["messages"] == 0
    finally:
        _refuse_writes(app, False)
    waiting = latest(app, Message)
    assert (waiting.status, waiting.claimed_at) == ("pending", None), "no claim left to wait out REQUEUE_AFTER"
    with app.app_context():
        assert requeue_due()["messages"] == 1
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["bo@example.com"]


def test_the_first_tick_after_an_outage_enqueues_what_was_stored_meanwhile(app, client, smtp_server, redis_server):
    load_rules(app)
    key = api_key(app)
    redis_server.stop()
    assert post_event(client, key, email="cy@example.com").status_code == 202  # stored; its job could not be
    with app.app_context():
        assert requeue_due()["events"] == 0
    redis_server.start()
    with app.app_context():  # without waiting REQUEUE_AFTER (30 s) for the event to look forgotten
        assert requeue_due()["events"] == 1
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["cy@example.com"]


def _lease_one(app, client, email: str) -> int:
    """*email* enrolled in a journey that waits; when it falls due, a tick leases it and enqueues its job. Return
    the second it fell due."""
    load_rules(app, LATER)
    post_event(client, api_key(app), email=email)
    run_worker(app)
    due = latest(app, Enrolment).due
    with app.app_context():
        assert requeue_due(now=due)["enrolments"] == 1
    return due


def _leased_batch_through_an_outage(app, client, redis_server, lose_the_job: bool, outage: bool = True) -> int:
    """A due enrolment leased and its job enqueued; Redis then goes away (losing the job first when
    *lose_the_job*: a worker popped it, or Redis restarted without it) and comes back; or, without an *outage*,
    loses its data between two ticks (FLUSHALL). Return the next tick's re-enqueued enrolments."""
    due = _lease_one(app, client, "di@example.com")
    leased = latest(app, Enrolment).due
    assert leased > due + 60, "leased: its due moved a lease ahead"
    if lose_the_job:
        get_queue(app).redis.flushall()
    if outage:
        redis_server.stop()
        with app.app_context():
            assert requeue_due(now=due + 1)["enrolments"] == 0  # Redis away: nothing leased or enqueued
        redis_server.start()
    with app.app_context():
        again = requeue_due(now=due + 2)["enrolments"]
    assert latest(app, Enrolment).due == leased, "the lease itself is kept: it lets only one of two jobs run"
    return again


def test_a_batch_leased_before_an_outage_is_not_left_to_wait_out_its_lease(app, client, smtp_server, redis_server):
    assert _leased_batch_through_an_outage(app, client, redis_server, lose_the_job=True) == 1
    run_worker(app)  # at once, not 120 s later when the lease would have run out
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["di@example.com"]


def test_a_leased_batch_whose_job_cannot_be_enqueued_on_recovery_is_enqueued_at_the_next(
    app, client, smtp_server, redis_server
):
    due = _lease_one(app, client, "ed@example.com")
    get_queue(app).redis.flushall()  # the job is gone
    _refuse_writes(app, True)  # and Redis, answering again, takes no write: the recovery's enqueue fails
    try:
        with app.app_context():
            assert [requeue_due(now=due + s)["enrolments"] for s in (1, 2)] == [0, 0]
    finally:
        _refuse_writes(app, False)
    with app.app_context():
        assert requeue_due(now=due + 3)["enrolments"] == 1  # still remembered: enqueued at the next recovery
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["ed@example.com"]


def test_a_flush_between_two_ticks_is_seen_and_the_leased_batch_enqueued_again(app, client, smtp_server, redis_server):
    assert _leased_batch_through_an_outage(app, client, redis_server, lose_the_job=True, outage=False) == 1
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["di@example.com"]
    assert get_queue(app).recovered() is False, "one loss is reported once"


def test_a_leased_batch_whose_job_outlived_the_outage_is_still_advanced_once(app, client, smtp_server, redis_server):
    assert _leased_batch_through_an_outage(app, client, redis_server, lose_the_job=False) == 1
    assert get_queue(app).waiting() == 2  # Redis kept the first job (saved on shutdown); the second is its twin
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["di@example.com"]
    with app.app_context():
        assert requeue_due(now=latest(app, Enrolment).due or 0)["enrolments"] == 0
    run_worker(app)
    assert [m["To"] for m in smtp_server.messages] == ["di@example.com"], "sent once: the twin found it advanced"


CONTACTS = 40
SETTINGS = {"SCHEDULER_INTERVAL": 0.2, "LOG_LEVEL": "WARNING"}  # the default lease (120 s) and REQUEUE_AFTER (30 s)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_workers_and_the_scheduler_outlive_redis_going_away_and_nothing_is_lost_or_doubled(
    app, client, holding_smtp, processes, redis_server
):
    install_series(app)
    key = api_key(app)
    procs = processes(**SETTINGS)
    scheduler = procs.start("scheduler")
    workers = [procs.start("worker") for _ in range(2)]
    first = [f"a{i:03d}@example.com" for i in range(CONTACTS)]
    response = client.post(
        "/api/v1/events/batch",
        headers={"Authorization": f"Bearer {key}"},
        json={"events": [{"contact": {"email": e}, "event": "signup.completed"} for e in first]},
    )
    assert response.status_code == 202, response.json
    wait_until(lambda: len(holding_smtp.messages) >= CONTACTS // 2, 120, procs.tail)

    holding_smtp.handler.holding = True  # a worker is mid-send when Redis goes away
    assert holding_smtp.handler.held.wait(60), procs.tail()
    redis_server.stop()
    holding_smtp.handler.holding = False  # its job ends with Redis gone
    workers.append(procs.start("worker"))  # and one starts while Redis is away
    second = [f"b{i:03d}@example.com" for i in range(CONTACTS)]
    for email in second:  # stored, not enqueued
        assert post_event(client, key, email=email, event="signup.completed").status_code == 202
    outage = time.monotonic() + 5
    while time.monotonic() < outage:  # journeys fall due meanwhile (their waits are 1 s)
        assert all(p.poll() is None for p in [scheduler, *workers]), f"a process exited\n{procs.tail()}"
        time.sleep(0.5)

    redis_server.start()
    back = time.monotonic()
    emails = first + second
    wait_until(
        lambda: sum(recipients(holding_smtp)[e] for e in emails) >= 3 * len(emails),
        300,
        lambda: f"{counts(app)}\n{procs.tail()}",
    )
    print(
        f"\nrecovered {time.monotonic() - back:.1f}s after Redis returned (target < 10 s): "
        f"{3 * len(emails)} messages delivered"
    )
    wait_until(
        lambda: not counts(app).get("pending") and not counts(app).get("sending"),
        60,
        lambda: f"{counts(app)}\n{procs.tail()}",
    )
    statuses = assert_exactly_once(app, holding_smtp, emails)
    assert statuses == {"sent": 3 * len(emails)}, statuses
    assert all(p.poll() is None for p in [scheduler, *workers]), f"a process exited\n{procs.tail()}"
