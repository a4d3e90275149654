"""Upgrades that cannot break: an instance made with the first released schema and holding data is upgraded to
this code, and its rules, contacts, journeys in flight and outbox rows survive and go on; migrations are
idempotent, run under a lock (two processes at once), and are preceded by a backup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from datetime import timedelta

from sqlalchemy import func, select, text

from server.app import create_app
from server.db import get_session, make_engine
from server.engine.jobs import requeue_due
from server.engine.timeutil import to_ts
from server.migrate import current_revisions, head_revisions, upgrade
from server.models import Base, Contact, Enrolment, EnrolmentState, Message, Rule, RuleVersion

from .helpers import run_worker
from .servers import reap

FIRST = "0001"  # the first released schema: contacts, events, the outbox
JOURNEYS = "0006"  # the first schema with rules, their versions and enrolments
SOURCE = 'rule "Series"\nwhen signup.completed then\n  send email a\n  wait 1d\n  send email b\nend\n'
#: the plan exactly as the compiler of revision 0006 wrote it (format 1: no "version" key)
PLAN_0006 = {
    "name": "Series",
    "line": 1,
    "fingerprint": "237a636c421d648c",
    "entry": {"kind": "default", "every": None},
    "goal": None,
    "quiet_hours": None,
    "trigger": {"kind": "event", "event": "signup.completed"},
    "condition": None,
    "match": [],
    "steps": [
        {"id": "s113e9b1a40", "line": 3, "op": "send", "channel": "email", "name": "a"},
        {"id": "s1c1a7ae8b1", "line": 4, "op": "wait", "seconds": 86400},
        {"id": "se48bccd728", "line": 5, "op": "send", "channel": "email", "name": "b"},
        {"id": "sde3ac21778", "line": 6, "op": "exit"},
    ],
}


def _json(conn, name: str) -> str:
    """A JSON parameter in raw SQL: PostgreSQL's columns are jsonb."""
    return f"CAST(:{name} AS jsonb)" if conn.dialect.name == "postgresql" else f":{name}"


def _first_release_data(url: str, now) -> None:
    """Build the instance the way its first releases did: schema 0001 and its rows, then 0006 and journeys."""
    engine = make_engine(url)
    try:
        upgrade(engine, FIRST)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO contacts (id, email, first_name, score, fields, created_at, updated_at) VALUES "
                    f"(1, 'ana@example.com', 'Ana', 0, {_json(conn, 'f')}, :t, :t), "
                    f"(2, 'ben@example.com', 'Ben', 3, {_json(conn, 'f')}, :t, :t)"
                ),
                {"f": json.dumps({"plan": "pro"}), "t": now - timedelta(hours=2)},
            )
            conn.execute(
                text(
                    "INSERT INTO events (id, contact_id, name, props, source, occurred_at, received_at, processed_at) "
                    f"VALUES (1, 1, 'signup.completed', {_json(conn, 'p')}, 'api', :t, :t, :t)"
                ),
                {"p": "{}", "t": now - timedelta(hours=2)},
            )
            # an outbox row the first release wrote and had not sent yet
            conn.execute(
                text(
                    "INSERT INTO messages (id, key, contact_id, channel, template, status, attempts, next_attempt_at, "
                    "data, created_at) VALUES (1, 'event:1:email:welcome', 1, 'email', 'welcome', 'pending', 0, :t, "
                    f"{_json(conn, 'd')}, :t)"
                ),
                {"d": json.dumps({"event": {}}), "t": now - timedelta(hours=2)},
            )
        upgrade(engine, JOURNEYS)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO templates (id, channel, name, parts, updated_at) VALUES "
                    f"(1, 'email', 'welcome', {_json(conn, 'w')}, :t), (2, 'email', 'a', {_json(conn, 'a')}, :t), "
                    f"(3, 'email', 'b', {_json(conn, 'b')}, :t)"
                ),
                {
                    "w": json.dumps({"subject": "welcome", "txt": "Welcome {{ contact.first_name }}"}),
                    "a": json.dumps({"subject": "a", "txt": "Step a"}),
                    "b": json.dumps({"subject": "b", "txt": "Step b for {{ contact.first_name }}"}),
                    "t": now - timedelta(hours=2),
                },
            )
            conn.execute(
                text(
                    "INSERT INTO rules (id, name, status, active_version_id, created_at, updated_at) "
                    "VALUES (1, 'Series', 'active', 1, :t, :t)"
                ),
                {"t": now - timedelta(hours=2)},
            )
            conn.execute(
                text(
                    "INSERT INTO rule_versions (id, rule_id, number, source, plan, created_at) "
                    f"VALUES (1, 1, 1, :s, {_json(conn, 'p')}, :t)"
                ),
                {"s": SOURCE, "p": json.dumps(PLAN_0006), "t": now - timedelta(hours=2)},
            )
            # Ben got "a" an hour ago and waits a day for "b" (pc 2: the step after the wait)
            entered = to_ts(now) - 3600
            conn.execute(
                text(
                    "INSERT INTO enrolments (id, contact_id, rule_id, version_id, pc, state, due, entered) "
                    "VALUES (1, 2, 1, 1, 2, 0, :due, :entered)"
                ),
                {"due": entered + 86400, "entered": entered},
            )
            conn.execute(
                text(
                    "INSERT INTO messages (id, key, contact_id, channel, template, status, attempts, data, "
                    f"created_at, sent_at) VALUES (2, 'enr:1:s113e9b1a40', 2, 'email', 'a', 'sent', 1, "
                    f"{_json(conn, 'd')}, :t, :t)"
                ),
                {
                    "d": json.dumps(
                        {"enrolment": 1, "rule": 1, "rule_name": "Series", "marketing": True, "step": "s113e9b1a40"}
                    ),
                    "t": now - timedelta(hours=1),
                },
            )
            if conn.dialect.name == "postgresql":  # where the app's own inserts would have left the sequences
                for table in ("contacts", "events", "messages", "templates", "rules", "rule_versions", "enrolments"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"))
    finally:
        engine.dispose()


def test_an_instance_of_the_first_schema_upgrades_and_its_journeys_and_outbox_go_on(
    config, database_url, smtp_server, clock, tmp_path
):
    _first_release_data(database_url, clock())

    app = create_app(config, clock=clock)  # what `nudge up` and every process run: migrate on start
    try:
        engine = app.extensions["nudge.db"].engine
        assert current_revisions(engine) == head_revisions()
        backups = sorted((tmp_path / "home" / "backups").glob("pre-upgrade-*.tar.gz"))
        assert len(backups) == 1, "a backup is taken before migrating a database holding data"
        with tarfile.open(backups[0]) as tar:
            assert json.loads(tar.extractfile("manifest.json").read())["schema_revision"] == [JOURNEYS]

        with app.app_context():
            session = get_session()
            rule = session.scalar(select(Rule))
            assert (rule.name, rule.status, rule.active_version_id) == ("Series", "active", 1)
            assert session.scalar(select(RuleVersion.plan))["steps"] == PLAN_0006["steps"]
            contacts = session.execute(select(Contact.email, Contact.score, Contact.fields).order_by(Contact.id))
            assert contacts.all() == [("ana@example.com", 0, {"plan": "pro"}), ("ben@example.com", 3, {"plan": "pro"})]
            waiting = session.scalar(select(Enrolment))
            assert (waiting.state, waiting.pc) == (EnrolmentState.ACTIVE, 2)
            assert session.scalar(select(Message.status).where(Message.id == 1)) == "pending"
            session.rollback()

            requeue_due()  # the first release's unsent outbox row: sent once, now
        run_worker(app)
        assert [(m["To"], m["Subject"]) for m in smtp_server.wait_for(1)] == [("ana@example.com", "welcome")]

        clock.advance(timedelta(days=1, minutes=1))  # Ben's day of waiting is over
        for _ in range(2):
            with app.app_context():
                requeue_due()
            run_worker(app)
        sent = [(m["To"], str(m["Subject"])) for m in smtp_server.wait_for(2)]
        assert sorted(sent) == [("ana@example.com", "welcome"), ("ben@example.com", "b")]
        assert "Step b for Ben" in smtp_server.messages[1].get_body(("plain",)).get_content()
        with app.app_context():
            session = get_session()
            assert session.scalar(select(Enrolment.state)) == EnrolmentState.DONE
            assert session.scalar(select(func.count()).where(Message.status == "sent")) == 3
            session.rollback()
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()
    assert len(smtp_server.messages) == 2


def _schema(engine) -> dict[str, list[str]]:
    from sqlalchemy import inspect

    with engine.connect() as conn:
        found = inspect(conn)
        return {table: sorted(c["name"] for c in found.get_columns(table)) for table in found.get_table_names()}


def test_upgrading_twice_changes_nothing_the_second_time(database_url):
    engine = make_engine(database_url)
    try:
        assert upgrade(engine) is True
        before = _schema(engine)
        assert upgrade(engine) is False
        assert upgrade(engine, "heads") is False
        assert _schema(engine) == before
        assert set(Base.metadata.tables) <= set(before)
    finally:
        engine.dispose()


def test_two_processes_migrating_at_once_both_succeed_one_after_the_other(database_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(NUDGE_HOME=str(tmp_path / "home"), NUDGE_DATABASE_URL=database_url, NUDGE_SECRET_KEY="k" * 20)
    if database_url.startswith("sqlite"):  # `nudge db upgrade` may create an embedded database: start from none
        assert not os.path.exists(database_url.removeprefix("sqlite:///"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "server.cli", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            reap(proc)
    assert [proc.returncode for proc in procs] == [0, 0], outs
    lines = sorted(out.strip().splitlines()[-1] for out, _err in outs)
    head = "+".join(sorted(head_revisions()))
    assert lines == [f"database at revision {head}", f"database at revision {head} (already up to date)"]
    engine = make_engine(database_url)
    try:
        assert current_revisions(engine) == head_revisions()
        assert set(Base.metadata.tables) <= set(_schema(engine))
    finally:
        engine.dispose()
