"""A send's stamp committed, its answer lost with the connection (a failover), and the scheduler settling the row as
``unknown`` before the worker writes the stamp again (PostgreSQL). The worker knows it never handed the message
over: the stamp written again takes the row back, and the mail goes out once. It was left ``unknown`` and never
sent, though the row said the provider might have it."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import get_db, get_session, make_engine
from server.engine.outbox import Delivery, resolve_stale_sends
from server.models import Message, MessageStatusChange, utcnow

from ..helpers import pending_emails
from .pg_proxy import CuttingProxy

pytestmark = pytest.mark.postgresql  # deselected unless --backends names postgresql


@pytest.fixture
def database_url(postgres_server, migrated_templates):
    return migrated_templates.new_pg_database(postgres_server, f"lost_{uuid.uuid4().hex[:8]}")


def test_a_stamp_whose_commit_answer_was_lost_is_written_again_and_the_mail_goes_out_once(app, config, smtp_server):
    table = Message.__table__
    url = config["DATABASE_URL"]
    port = int(url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    with app.app_context():
        ids = pending_emails(get_session(), ["late@example.com"])
    engine = get_db(app).engine

    def scheduler() -> None:
        """Meanwhile the stamp is committed; the scheduler, finding it stale, makes the row ``unknown``."""
        with Session(engine) as other:
            deadline = time.monotonic() + 10
            while other.scalar(select(table.c.sending_at).where(table.c.id == ids[0])) is None:
                assert time.monotonic() < deadline, "the stamp was never committed"
                other.rollback()
                time.sleep(0.01)
            later = utcnow()
            assert resolve_stale_sends(other, app.config, later, later)["unknown"] == 1
            other.commit()

    # the stamp is the one update that sets sending_at right after status (the claim sets claimed_at between); the
    # commit after it reaches the server, and the connection is cut before its answer
    stamp = b"::VARCHAR, sending_at="
    proxy = CuttingProxy(port, b"COMMIT", cuts=1, after=stamp, forward=True, meanwhile=scheduler)
    worker_engine = make_engine(proxy.url(url))
    try:
        with app.app_context(), Session(worker_engine) as session, Delivery(session, app) as delivery:
            assert delivery.deliver(ids) == 1
    finally:
        worker_engine.dispose()
        proxy.close()
    assert proxy.done == 1
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["late@example.com"]
    with Session(engine) as session:
        assert session.scalar(select(table.c.status).where(table.c.id == ids[0])) == "sent"
        history = session.execute(
            select(MessageStatusChange.status, MessageStatusChange.source)
            .where(MessageStatusChange.message_id == ids[0])
            .order_by(MessageStatusChange.id)
        ).all()
    assert [status for status, _source in history] == ["unknown", "sent"], history
    assert len(smtp_server.messages) == 1  # the delivery is over: every mail it sent has arrived
