"""A provider's rate limit holds the whole batch: after a ``429`` with ``Retry-After`` the outbox sends nothing more on
that channel in the job, and puts the rest back to ``pending`` for that long without counting an attempt; each message
still arrives once. Counted on what the (real, local) webhook receiver got, on the engine's clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from server.db import get_session
from server.engine.outbox import CLAIM_BATCH, deliver
from server.engine.timeutil import to_dt, to_ts
from server.models import Message, MessageStatusChange, WebhookEndpoint, utcnow

from .test_webhook import SECRET, config, receiver  # noqa: F401  (fixtures)

ROWS = 4


@pytest.fixture
def outbox(app, receiver):  # noqa: F811
    with app.app_context():
        session = get_session()
        session.add(WebhookEndpoint(name="crm", url=receiver.url + "/hook", secrets=[SECRET]))
        session.execute(
            insert(Message),
            [
                {"key": f"broadcast:9:{i}", "channel": "webhook", "template": "crm", "data": {"type": "contact.tagged"}}
                for i in range(ROWS)
            ],
        )
        session.commit()
        return list(session.scalars(select(Message.id).order_by(Message.id)))


def _rows(app):
    with app.app_context():
        return [
            (m.status, m.attempts, m.next_attempt_at)
            for m in get_session().scalars(select(Message).order_by(Message.id))
        ]


def test_a_429_holds_the_rest_of_the_batch_until_retry_after(app, receiver, outbox):  # noqa: F811
    now = to_ts(utcnow()) + 1  # the rows are due (the clock's whole seconds)
    receiver.answer_next(200)
    receiver.answer_next(429, Retry_After="30")
    with app.app_context():
        assert deliver(get_session(), app, outbox, now=now) == 1
    assert len(receiver.received) == 2  # one sent, one refused, and no more calls after the refusal
    rows = _rows(app)
    assert rows[0][:2] == ("sent", 1)
    assert rows[1] == ("pending", 1, to_dt(now) + timedelta(seconds=30))  # the refused one: its try counted
    assert rows[2:] == [("pending", 0, to_dt(now + 30))] * (ROWS - 2)  # never tried: no attempt counted
    with app.app_context():
        history = get_session().execute(select(MessageStatusChange.message_id, MessageStatusChange.detail)).all()
    assert sum(1 for _id, detail in history if detail == "the provider asked to wait 30s") == ROWS - 2

    with app.app_context():  # not before the provider's time
        assert deliver(get_session(), app, outbox, now=now + 29) == 0
    assert len(receiver.received) == 2
    with app.app_context():
        assert deliver(get_session(), app, outbox, now=now + 30) == ROWS - 1
    assert [status for status, _attempts, _at in _rows(app)] == ["sent"] * ROWS
    assert len(receiver.received) == ROWS + 1  # each message delivered once, the refused one tried twice


def test_a_send_job_calls_endpoints_of_one_host_over_one_connection(app, receiver):  # noqa: F811
    """Two endpoints on one host, more rows than one claimed batch: the job keeps one connection to the host."""
    with app.app_context():
        session = get_session()
        session.add(WebhookEndpoint(name="crm", url=receiver.url + "/crm", secrets=[SECRET]))
        session.add(WebhookEndpoint(name="erp", url=receiver.url + "/erp", secrets=[SECRET]))
        session.execute(
            insert(Message),
            [
                {"key": f"broadcast:8:{i}", "channel": "webhook", "template": ("crm", "erp")[i % 2], "data": {}}
                for i in range(CLAIM_BATCH + 5)
            ],
        )
        session.commit()
        ids = list(session.scalars(select(Message.id).order_by(Message.id)))
    with app.app_context():
        assert deliver(get_session(), app, ids, now=to_ts(utcnow()) + 1) == CLAIM_BATCH + 5
    assert len(receiver.received) == CLAIM_BATCH + 5 and receiver.connections == 1
