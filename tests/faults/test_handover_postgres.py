"""``unknown`` only when it truly is: a worker killed with -9 after claiming a message but before handing it to the
channel (stopped there by a table lock only PostgreSQL offers) leaves a row that goes back to pending and is sent
once, counted on what the SMTP server received."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from server.engine.jobs import process_events

from ..helpers import api_key, post_event
from .journey import install_series, message_of, recipients, wait_until
from .test_handover import ONE_STEP, SETTINGS

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]  # deselected unless --backends names postgresql


@pytest.fixture
def database_url(postgres_server):
    """PostgreSQL: a test can hold a table lock that stops the worker between its claim and the hand-over."""
    return postgres_server.new_database(f"handover_{uuid.uuid4().hex[:8]}")


def _waiting_for_a_lock(url: str) -> bool:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0]
        )


@pytest.mark.timeout(180)
def test_a_worker_killed_before_the_hand_over_leaves_a_row_that_is_sent_once(
    app, client, smtp_server, processes, database_url
):
    install_series(app, ONE_STEP)
    procs = processes(**SETTINGS)
    procs.start("scheduler")
    event_id = post_event(client, api_key(app), email="z@example.com", event="signup.completed").json["id"]
    with app.app_context():
        assert process_events([event_id]) == 1  # the journey wrote its outbox row; the send job waits in Redis

    # rendering reads the journey (event.* props): with the table locked, the worker stops after its claim
    lock = psycopg.connect(database_url.replace("+psycopg", ""))
    lock.execute("LOCK TABLE enrolments IN ACCESS EXCLUSIVE MODE")
    worker = procs.start("worker")
    wait_until(
        lambda: (message_of(app, "z@example.com") or ("",))[0] == "sending" and _waiting_for_a_lock(database_url),
        60,
        lambda: f"{message_of(app, 'z@example.com')}\n{procs.tail()}",
    )
    procs.kill(worker)  # claimed, never handed to the channel
    lock.rollback()
    lock.close()
    procs.start("worker")

    wait_until(
        lambda: message_of(app, "z@example.com")[0] == "sent",
        60,
        lambda: f"{message_of(app, 'z@example.com')}\n{procs.tail()}",
    )
    assert recipients(smtp_server)["z@example.com"] == 1, "sent once: it had never left"
    _status, history = message_of(app, "z@example.com")
    assert [s for s, _detail in history] == ["pending", "sent"]
    assert history[0][1] == "the worker stopped before handing it to the channel; it goes out again"
