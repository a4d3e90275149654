"""The three-step journey the fault tests run, and how they read its outcome from the outbox and the SMTP server."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import func, select

from server.db import get_session
from server.engine.render import save_template
from server.models import Contact, Enrolment, EnrolmentState, Message, MessageStatusChange

from ..helpers import load_rules

STEPS = ("a", "b", "c")
SERIES = """rule "Series"
when signup.completed then
  send email a
  wait 1s
  send email b
  wait 1s
  send email c
end
"""


def install_series(app, rule: str = SERIES) -> None:
    """The rule and its three email templates, each subject naming its step."""
    with app.app_context():
        session = get_session()
        for step in STEPS:
            save_template(session, "email", step, {"subject": step, "txt": f"Step {step} for {{{{ contact.email }}}}"})
        session.commit()
    load_rules(app, rule)


def received(smtp_server) -> Counter[tuple[str, str]]:
    """How often each (recipient, step) arrived at the SMTP server."""
    with smtp_server.handler.cond:
        pairs = list(zip(smtp_server.handler.envelopes, smtp_server.handler.messages, strict=True))
    return Counter((rcpt, str(msg["Subject"])) for (_sender, rcpts), msg in pairs for rcpt in rcpts)


def outbox(app) -> dict[tuple[str, str], str]:
    """(recipient, step) → status of its outbox row; asserts there is one row per pair."""
    with app.app_context():
        rows = (
            get_session()
            .execute(
                select(Contact.email, Message.template, Message.status).join(Contact, Contact.id == Message.contact_id)
            )
            .all()
        )
        get_session().rollback()
    table = {(email, template): status for email, template, status in rows}
    assert len(table) == len(rows), "two outbox rows for one contact and step"
    return table


def counts(app) -> dict[str, int]:
    """Active enrolments and outbox rows by status."""
    with app.app_context():
        session = get_session()
        out = dict(session.execute(select(Message.status, func.count()).group_by(Message.status)).all())
        out["active"] = session.scalar(select(func.count()).where(Enrolment.state == EnrolmentState.ACTIVE))
        out["enrolments"] = session.scalar(select(func.count(Enrolment.id)))
        session.rollback()
    return out


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], str], every: float = 0.25) -> None:
    """Poll *condition* until it holds; fail with *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting: {what()}")
        time.sleep(every)


def assert_exactly_once(app, smtp_server, emails: list[str]) -> dict[str, int]:
    """Every (contact, step) reached the SMTP server once, or is an ``unknown`` row; none arrived twice.

    :return: outbox rows by status.
    """
    got = received(smtp_server)
    doubled = {pair: n for pair, n in got.items() if n > 1}
    assert not doubled, f"sent more than once: {sorted(doubled.items())[:10]}"
    table = outbox(app)
    expected = {(email, step) for email in emails for step in STEPS}
    assert set(table) == expected, (
        f"missing rows: {sorted(expected - set(table))[:10]}; unexpected: {sorted(set(table) - expected)[:10]}"
    )
    assert set(got) <= expected
    statuses = Counter(table.values())
    assert set(statuses) <= {"sent", "unknown"}, statuses
    lost = [pair for pair, status in table.items() if status == "sent" and not got[pair]]
    assert not lost, f"recorded as sent but never received: {lost[:10]}"
    return dict(statuses)


def message_of(app, email: str) -> tuple[str, list[tuple[str, str]]] | None:
    """Status of the contact's message and its status history (status, detail); None before it exists."""
    with app.app_context():
        session = get_session()
        msg = session.scalar(
            select(Message).join(Contact, Contact.id == Message.contact_id).where(Contact.email == email)
        )
        out = (
            None
            if msg is None
            else (
                msg.status,
                [
                    (c.status, c.detail or "")
                    for c in session.scalars(
                        select(MessageStatusChange)
                        .where(MessageStatusChange.message_id == msg.id)
                        .order_by(MessageStatusChange.id)
                    )
                ],
            )
        )
        session.rollback()
    return out


def recipients(smtp_server) -> Counter[str]:
    """How many messages each recipient got at the SMTP server."""
    with smtp_server.handler.cond:
        return Counter(rcpt for _sender, rcpts in smtp_server.handler.envelopes for rcpt in rcpts)
