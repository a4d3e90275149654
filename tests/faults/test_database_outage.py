"""The database going away: PostgreSQL's connections killed (a failover, a restart) or refused, SQLite's disk full.

The API answers 503 (or 507: no space) with ``Retry-After`` and a problem+json that says what to do, never a 500;
an import stopped by a full disk is failed with that reason and can be retried; workers and the scheduler (real
processes) outlive the connections they held, and afterwards every accepted event is processed and every mail
arrives exactly once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import func, select, text

from server.db import get_session
from server.models import Contact, Event, Message, MessageStatusChange
from server.queue import get_queue

from ..helpers import api_key, load_rules, post_event, run_worker
from .journey import counts, install_series, outbox, received, wait_until
from .pg_proxy import CuttingProxy


def _production(app) -> None:
    """Errors answered as in production: Flask's handlers, not an exception raised into the test."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.testing = False


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(
        url.replace("postgresql+psycopg", "postgresql").rsplit("/", 1)[0] + "/postgres", autocommit=True
    )


def _terminate(url: str) -> int:
    """What a failover or a restart does to every connection to the database: return how many were ended."""
    name = url.rsplit("/", 1)[1]
    with _admin(url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


@contextmanager
def _postgres_down(url: str):
    """The database refuses every new connection and has lost the ones it had, until the block ends."""
    name = url.rsplit("/", 1)[1]
    with _admin(url) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    _terminate(url)
    try:
        yield
    finally:
        with _admin(url) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def _assert_unavailable(response, status: int = 503, words: str = "database") -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)[:500]
    assert response.json["status"] == status
    assert words in response.json["detail"], response.json
    assert "Traceback" not in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0


# -- PostgreSQL ----------------------------------------------------------------------------------------------------
pytestmark = pytest.mark.postgresql  # deselected unless --backends names postgresql


@pytest.fixture
def database_url(postgres_server, migrated_templates):
    """PostgreSQL only (SQLite's outage, a full disk, is tests/faults/test_database_full.py's)."""
    return migrated_templates.new_pg_database(postgres_server, f"down_{uuid.uuid4().hex[:8]}")


def test_api_answers_503_while_postgres_refuses_connections_then_accepts_again(app, client, config):
    _production(app)
    key = api_key(app)
    url = config["DATABASE_URL"]
    headers = {"Authorization": f"Bearer {key}"}
    admin = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    with _postgres_down(url):
        _assert_unavailable(post_event(client, key, email="ana@example.com"))  # the lean path
        _assert_unavailable(  # Flask's (a body the lean path hands on)
            client.post(
                "/api/v1/events/batch?x=1",
                json={"events": [{"contact": {"email": "b@x.io"}, "event": "a.b"}]},
                headers=headers,
            )
        )
        _assert_unavailable(client.get("/api/v1/events", headers=admin))
    assert post_event(client, key, email="ana@example.com").status_code == 202  # a fresh connection
    assert client.get("/api/v1/events", headers=admin).status_code == 200


def test_a_request_after_a_failover_gets_a_fresh_connection(app, client, config):
    _production(app)
    key = api_key(app)
    admin = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    assert post_event(client, key, email="ana@example.com").status_code == 202
    assert _terminate(config["DATABASE_URL"]) >= 1  # the pool's connections are dead now
    assert post_event(client, key, email="bo@example.com").status_code == 202
    assert client.get("/api/v1/events", headers=admin).status_code == 200


def test_a_worker_outlives_postgres_refusing_connections_and_its_work_is_done_after(app, client, config, smtp_server):
    load_rules(app)
    key = api_key(app)
    assert post_event(client, key, email="ana@example.com").status_code == 202
    failures: list[str] = []
    with _postgres_down(config["DATABASE_URL"]):
        run_worker(app, failures=failures)  # the job cannot reach the database: it fails, the worker goes on
    assert failures
    assert all("database" in text.lower() or "connection" in text.lower() for text in failures), failures
    with app.app_context():
        from server.engine.jobs import requeue_due

        assert requeue_due(now=int(app.extensions["nudge.clock"]().timestamp()) + 60)["events"] >= 1
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["ana@example.com"]


CONTACTS = 600
BATCH = 50
TWO_STEPS = """rule "Series"
when signup.completed then
  send email a
  wait 1h
  send email b
end
"""
#: small leases and back-offs so that recovery takes seconds, not minutes
SETTINGS = {"SCHEDULER_INTERVAL": 0.2, "REQUEUE_AFTER": 1, "ENGINE_LEASE": 2, "RETRY_BASE": 1, "LOG_LEVEL": "WARNING"}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_journeys_run_exactly_once_through_connections_killed_again_and_again(
    app, client, config, smtp_server, processes, clock
):
    """Every connection of every process ended (a failover) while events arrive, journeys run and mail goes out:
    no request answers 500, no process dies, every event is processed and every mail arrives exactly once."""
    _production(app)
    install_series(app, TWO_STEPS)
    key = api_key(app)
    url = config["DATABASE_URL"]
    procs = processes(**SETTINGS)
    live = [procs.start("scheduler"), procs.start("worker"), procs.start("worker")]
    emails = [f"f{i:04d}@example.com" for i in range(CONTACTS)]
    statuses: dict[int, int] = {}
    for first in range(0, CONTACTS, BATCH):
        body = {
            "events": [{"contact": {"email": e}, "event": "signup.completed"} for e in emails[first : first + BATCH]]
        }
        for _try in range(20):  # a client retries a 503 (after Retry-After; at once here: the database is back)
            response = client.post("/api/v1/events/batch", json=body, headers={"Authorization": f"Bearer {key}"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code != 503:
                break
            _assert_unavailable(response)
        assert response.status_code == 202, response.get_data(as_text=True)[:2000]
        _terminate(url)  # the web's, the workers' and the scheduler's connections, mid-work

    def settled(step: str) -> bool:
        """Every contact's *step* is settled: no row of it waits or is on the wire."""
        if step == "a":
            _terminate(url)  # and again while the first mails go out
        done = [status for (_email, s), status in outbox(app).items() if s == step]
        return len(done) == CONTACTS and not {"pending", "sending"} & set(done)

    wait_until(lambda: settled("a"), 60, lambda: f"{counts(app)}\n{procs.tail()}", every=0.3)
    clock.advance(timedelta(hours=2))  # every journey's wait is over
    kills = 0
    while sum(1 for msg in smtp_server.messages if str(msg["Subject"]) == "b") < CONTACTS // 2 and kills < 40:
        _terminate(url)
        kills += 1
        time.sleep(0.1)
    wait_until(lambda: settled("b"), 60, lambda: f"{counts(app)}\n{procs.tail()}", every=0.3)

    with app.app_context():
        session = get_session()
        unprocessed = session.scalar(select(func.count(Event.id)).where(Event.processed_at.is_(None)))
        session.rollback()
    assert unprocessed == 0
    got = received(smtp_server)
    doubled = {pair: n for pair, n in got.items() if n > 1}
    assert not doubled, f"sent more than once: {sorted(doubled.items())[:10]}"
    expected = {(email, step) for email in emails for step in ("a", "b")}
    # a round slower than REQUEUE_AFTER (1 s here: retries while connections die) shows `unknown` until its worker,
    # alive, writes what it knows (the row was `sending` past the scheduler's bound): what counts is what is left
    deadline = time.monotonic() + 15
    while "unknown" in set((table := outbox(app)).values()) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert set(table) == expected
    # an outcome whose connection ended before its commit is written again on a new one: none is left unknown
    unsent = f"{Counter(table.values())}\n{_histories(app, table, got)}"
    assert set(table.values()) == {"sent"}, f"{unsent}\n{procs.tail(400)}"
    lost = [pair for pair, status in table.items() if status == "sent" and not got[pair]]
    assert not lost, f"recorded as sent but never received: {lost[:10]}"
    print(f"outbox: {Counter(table.values())}")
    assert [p.poll() for p in live] == [None] * len(live), f"a process died:\n{procs.tail()}"
    assert 500 not in statuses, statuses
    logs = procs.tail(400)
    assert "found an unhandled exception, quitting" not in logs, logs
    print(f"answers: {statuses}")


def _histories(app, table: dict[tuple[str, str], str], got: Counter) -> str:
    """For a failure message: each row not sent, whether its mail arrived, and its status history."""
    out = []
    with app.app_context():
        session = get_session()
        for (email, step), status in sorted(table.items()):
            if status == "sent":
                continue
            changes = session.execute(
                select(MessageStatusChange.at, MessageStatusChange.status, MessageStatusChange.source)
                .join(Message, Message.id == MessageStatusChange.message_id)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Contact.email == email, Message.template == step)
                .order_by(MessageStatusChange.id)
            ).all()
            row = session.execute(
                select(Message.attempts, Message.claimed_at, Message.sending_at, Message.error)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Contact.email == email, Message.template == step)
            ).one()
            out.append(f"{email} {step} {status} received {got[(email, step)]}x; {tuple(row)}; {changes}")
        session.rollback()
    return "\n".join(out)


def test_an_app_context_ends_cleanly_after_its_connection_was_terminated(app, config, caplog):
    """The session's closing rollback on a connection the database ended raised from the context's teardown: in a
    worker, after a job, that ended RQ's loop ("found an unhandled exception, quitting")."""
    caplog.set_level(logging.WARNING)
    with app.app_context():
        get_session().execute(text("SELECT 1"))  # a transaction open on a pooled connection
        assert _terminate(config["DATABASE_URL"]) >= 1
    with app.app_context():  # the next one gets a live connection
        assert get_session().execute(text("SELECT 2")).scalar() == 2
    assert [r for r in caplog.records if r.exc_info] == []
    assert any(r.getMessage().startswith("closing a session: database unavailable") for r in caplog.records)


def test_a_command_starting_while_its_connections_are_ended_tries_again(app, config, monkeypatch, caplog):
    """A failover or restart under way ends the connection a command opens to check the database (PostgreSQL:
    57P01, ended by an administrator): the command tries again instead of exiting; a wrong address does not."""
    import click
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from server import cli

    ended = []

    def end_the_first_two(dbapi_connection, _record) -> None:
        if len(ended) < 2:
            ended.append(1)
            dbapi_connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    monkeypatch.setattr(cli, "START_WAIT", 0)
    caplog.set_level(logging.WARNING)
    event.listen(Engine, "connect", end_the_first_two)
    try:
        started = cli.build_app(**config)
    finally:
        event.remove(Engine, "connect", end_the_first_two)
    started.extensions["nudge.queue"].close()
    started.extensions["nudge.db"].dispose()
    assert len(ended) == 2
    tries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("starting: ")]
    assert len(tries) == 2 and "terminating connection due to administrator command" in tries[0], tries
    wrong = {**config, "DATABASE_URL": config["DATABASE_URL"].rsplit("/", 1)[0] + "/no_such_database"}
    with pytest.raises(click.ClickException, match="no_such_database"):
        cli.build_app(**wrong)
    assert len([r for r in caplog.records if r.getMessage().startswith("starting: ")]) == 2, "not tried again"


@pytest.mark.parametrize("marker", [b"SELECT 1", b""], ids=["after-connecting", "while-connecting"])
def test_a_command_whose_connection_the_server_closes_at_start_tries_again(config, monkeypatch, caplog, marker):
    """The server accepts the connection a command opens to check the database, then goes away, before answering
    its first query or during the handshake (a failover under way; libpq: "server closed the connection
    unexpectedly", no SQLSTATE): the command tries again instead of exiting (the scheduler exited at start-up in a
    fault test)."""
    from server import cli

    url = config["DATABASE_URL"]
    port = int(url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    proxy = CuttingProxy(port, marker, cuts=2)
    monkeypatch.setattr(cli, "START_WAIT", 0)
    caplog.set_level(logging.WARNING)
    try:
        started = cli.build_app(**{**config, "DATABASE_URL": proxy.url(url)})
        started.extensions["nudge.queue"].close()
        started.extensions["nudge.db"].dispose()
    finally:
        proxy.close()
    assert proxy.done == 2
    tries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("starting: ")]
    assert 1 <= len(tries) <= 2, tries
    assert all("server closed the connection unexpectedly" in line for line in tries), tries


def _a_job_whose_connection_is_ended() -> None:
    """A job the database fails: its connection ended by the server (a failover, a restart) while it runs."""
    get_session().execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))


def test_a_job_the_database_failed_is_one_warning_line_not_an_error_with_a_traceback(app, caplog):
    """The database away is its state, not a bug: a job it failed is logged in one line (the driver's words, what
    happens next) and fails as any job does (RQ's failed registry, the exception handlers); a worker's log during
    a failover is not a page of tracebacks at ERROR."""
    caplog.set_level(logging.INFO)
    failures: list[str] = []
    assert get_queue(app).enqueue(_a_job_whose_connection_is_ended)
    run_worker(app, failures=failures)
    assert len(failures) == 1 and "terminating connection due to administrator command" in failures[0], failures
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:300] for r in errors]
    lines = [r.getMessage() for r in caplog.records if "_a_job_whose_connection_is_ended" in r.getMessage()]
    assert len(lines) == 1 and "database unavailable" in lines[0] and "Traceback" not in lines[0], lines
    assert [r.exc_info for r in caplog.records if r.exc_info] == []
