"""Small helpers shared by tests: the queue, the API, admin users and signed-in clients."""

from __future__ import annotations

from traceback import format_exception

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from server.auth import create_api_key
from server.db import get_session
from server.queue import AppWorker, get_queue

#: the password of users made by :func:`make_user`
PASSWORD = "correct horse battery staple"

#: argon2id at its lowest cost, for the users tests make: a password is checked with the cost stored in its hash, so
#: signing in as them (the app, ``nudge web``, a browser) takes microseconds instead of two hashings at the app's
#: real cost (~0.2 s each); the app's own hashing is tested where users are created through it (forms, CLI)
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_user(app, email: str, password: str = PASSWORD, **attrs) -> int:
    """Create an admin-area user (extra attributes, e.g. ``role="editor"``, as the model has them); return its id."""
    from server.models import User

    with app.app_context():
        session = get_session()
        user = User(email=email, password_hash=_CHEAP_HASHER.hash(password), **attrs)
        session.add(user)
        session.commit()
        return user.id


def csrf_of(client, path: str = "/admin/login") -> str:
    """The CSRF token of *client*'s session, read from a page as a browser would."""
    import re

    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def signed_in(app, role: str = "admin", email: str | None = None, password: str = PASSWORD):
    """A test client signed in through the sign-in form as a new user with *role*; ``client.csrf`` is its token."""
    email = email or f"{role}-{next(_numbers)}@example.com"
    make_user(app, email, password, role=role)
    client = app.test_client()
    response = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": csrf_of(client)})
    assert response.status_code == 302, response.get_data(as_text=True)
    client.csrf = csrf_of(client, "/admin/account")  # signing in starts a new session, with a new token
    client.email = email
    return client


_numbers = iter(range(1, 1_000_000))


def api_key(app, scope: str = "ingest") -> str:
    with app.app_context():
        return create_api_key(get_session(), scope)


def run_worker(app, *, failures: list[str] | None = None) -> None:
    """Run a real RQ worker over the app's queues until they are empty; fail the calling test if a job failed.

    A job that raised (caught by the worker's exception handler) or landed in RQ's failed job registry fails the
    test with the job's description and traceback. A test that makes a job crash on purpose passes *failures*, a
    list that receives those texts instead, and asserts on them itself.
    """
    tq = get_queue(app)
    already = {q.name: set(q.failed_job_registry.get_job_ids()) for q in tq.queues}
    raised: list[str] = []

    def record(job, exc_type, exc_value, traceback) -> bool:
        raised.append(
            f"job {job.id} ({job.description}) raised:\n" + "".join(format_exception(exc_type, exc_value, traceback))
        )
        return True  # RQ's own handling goes on: the job lands in the failed job registry

    worker = AppWorker(tq.queues, connection=tq.redis, app=app, exception_handlers=[record])
    worker.work(burst=True, logging_level="WARNING")
    for queue in tq.queues:
        for job_id in set(queue.failed_job_registry.get_job_ids()) - already[queue.name]:
            if not any(text.startswith(f"job {job_id} ") for text in raised):
                job = queue.fetch_job(job_id)
                result = job.latest_result() if job is not None else None
                raised.append(
                    f"job {job_id} ({job.description if job else '?'}) failed:\n"
                    + (result.exc_string if result is not None and result.exc_string else "(no traceback)")
                )
    if failures is not None:
        failures.extend(raised)
    elif raised:
        pytest.fail("a job run by run_worker failed:\n\n" + "\n\n".join(raised), pytrace=False)


def post_event(client, key: str, email: str = "a@example.com", event: str = "form.submitted", **props):
    return client.post(
        "/api/v1/events",
        json={"contact": {"email": email}, "event": event, "props": props},
        headers={"Authorization": f"Bearer {key}"},
    )


WELCOME_RULE = 'rule "Welcome"\n  always\nwhen form.submitted then\n  send email welcome\nend\n'


def load_rules(app, text: str = WELCOME_RULE, filename: str = "rules.nudge", *, migrate: bool = False) -> None:
    """Compile and activate rules exactly as `nudge apply` does (against the installed plugins' names; any
    template name goes); with *migrate*, as `nudge apply --migrate` (journeys move onto the new versions)."""
    from dataclasses import replace

    from server.engine.rules import RuleError, apply_plans, compile_rules
    from server.engine.vocabulary import plugin_vocabulary

    with app.app_context():
        words = plugin_vocabulary(app.extensions["nudge.plugins"])
        words = replace(words, channels=dict.fromkeys(words.channels))
        plans, errors, _ = compile_rules([(filename, text)], words)
        if errors:
            raise RuleError(errors)
        session = get_session()
        apply_plans(session, plans, migrate=migrate)
        session.commit()


def insert_rule(conn, rule_id: int, name: str, plan: str | None = None) -> None:
    """An active rule as raw rows, for a migration test filling an install's tables; with *plan* (JSON), its version 1
    (id *rule_id*) with that plan is the active one."""
    conn.execute(
        text(
            "INSERT INTO rules (id, name, status, active_version_id, created_at, updated_at) "
            "VALUES (:id, :name, 'active', :version, '2026-01-01', '2026-01-01')"
        ),
        {"id": rule_id, "name": name, "version": None if plan is None else rule_id},
    )
    if plan is not None:
        conn.execute(
            text(
                "INSERT INTO rule_versions (id, rule_id, number, source, plan, created_at) "
                "VALUES (:id, :id, 1, '', :plan, '2026-01-01')"
            ),
            {"id": rule_id, "plan": plan},
        )


def latest(app, model, *where):
    """The newest row of *model* (matching *where*), read in its own app context: a snapshot that outlives it."""
    with app.app_context():
        session = get_session()
        row = session.scalar(select(model).where(*where).order_by(model.id.desc()))
        session.expunge_all()
        session.rollback()
    return row


def pending_emails(session, addresses: list[str], template: str = "welcome") -> list[int]:
    """New contacts at *addresses*, each with a pending outbox row (a broadcast's email *template*), committed.

    :return: the outbox rows' ids, in the order of *addresses*.
    """
    from sqlalchemy import insert

    from server.models import Contact, Message

    session.execute(insert(Contact), [{"email": address, "fields": {}} for address in addresses])
    contacts = list(session.scalars(select(Contact.id).order_by(Contact.id)))[-len(addresses) :]
    rows = [{"key": f"broadcast:1:{c}", "contact_id": c, "channel": "email", "template": template} for c in contacts]
    session.execute(insert(Message), rows)
    session.commit()
    return list(session.scalars(select(Message.id).where(Message.contact_id.in_(contacts)).order_by(Message.id)))


def lock_waiters(session) -> int:
    """PostgreSQL: other sessions of this database waiting for a lock now."""
    session.execute(text("SELECT pg_stat_clear_snapshot()"))  # else a transaction sees its first snapshot only
    return session.scalar(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
    )
