"""A round's outcomes and the scheduler settling stale sends, on PostgreSQL: the worker's write waits for a row the
scheduler is settling as ``unknown`` (its stamp looked stale) while the scheduler waits for a row the round holds.
PostgreSQL ends one of them (40P01); a worker it ends writes what it knows again, so the mail the relay accepted is
``sent``, not left ``unknown`` (the database-outage fault test lost four outcomes that way). And the scheduler no
longer waits for a row a worker holds: it skips it."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from server.db import get_db, get_session
from server.engine.outbox import Delivery, resolve_stale_sends
from server.models import Message, MessageStatusChange, utcnow

from ..helpers import lock_waiters, pending_emails

pytestmark = pytest.mark.postgresql  # deselected unless --backends names postgresql


@pytest.fixture
def database_url(postgres_server, migrated_templates):
    return migrated_templates.new_pg_database(postgres_server, f"deadlock_{uuid.uuid4().hex[:8]}")


class Deadlocked(Delivery):
    """A delivery whose first round of outcomes holds the row *held* when it writes, and meets the scheduler's
    settling of the round's own row on another connection: each waits for the other."""

    held = 0
    scheduler: threading.Thread | None = None
    outcome: list[str] = []

    def _write_outcomes(self, items, at) -> None:
        if Deadlocked.scheduler is None:
            ready = threading.Event()
            Deadlocked.scheduler = threading.Thread(target=self._settle, args=(items[0].msg.id, ready))
            Deadlocked.scheduler.start()
            ready.wait(10)
            table = Message.__table__  # the round holds a row (as its first updates do) before it waits
            self.session.connection().execute(select(table.c.id).where(table.c.id == self.held).with_for_update())
        super()._write_outcomes(items, at)

    def _settle(self, message_id: int, ready: threading.Event) -> None:
        """The other writer's side (the scheduler's, before it skipped rows a worker holds): the round's row moved to
        ``unknown`` first, then the row the round holds."""
        table = Message.__table__
        with get_db(self.app).engine.connect() as other:
            # the round, which waits first, finds the deadlock and is ended, not this (it checks after 1 s)
            other.execute(text("SET LOCAL deadlock_timeout = '20s'"))
            other.execute(update(table).where(table.c.id == message_id).values(status="unknown"))
            ready.set()
            with get_db(self.app).engine.connect() as probe:  # until the round waits for it
                deadline = time.monotonic() + 10
                while not lock_waiters(probe) and time.monotonic() < deadline:
                    time.sleep(0.01)
            try:
                other.execute(update(table).where(table.c.id == self.held).values(error="settled"))
                other.commit()
                Deadlocked.outcome.append("committed")
            except Exception as exc:
                other.rollback()
                Deadlocked.outcome.append(type(getattr(exc, "orig", exc)).__name__)


def test_a_round_ended_by_a_deadlock_with_the_scheduler_writes_its_outcomes_again(app, smtp_server):
    app.config["SMTP_CONNECTIONS"] = 1
    with app.app_context():
        session = get_session()
        ids = pending_emails(session, ["a@example.com", "held@example.com"])
        Deadlocked.held, Deadlocked.scheduler, Deadlocked.outcome = ids[1], None, []
        with Deadlocked(session, app) as delivery:
            assert delivery.deliver(ids[:1]) == 1
        Deadlocked.scheduler.join(10)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["a@example.com"]
    # PostgreSQL ended the round (it waited first): the scheduler's settling went through
    assert Deadlocked.outcome == ["committed"]
    with app.app_context():
        session = get_session()
        assert session.scalar(select(Message.status).where(Message.id == ids[0])) == "sent"
        history = session.scalars(
            select(MessageStatusChange.status).where(MessageStatusChange.message_id == ids[0])
        ).all()
        assert history == ["sent"]
        assert session.scalar(select(Message.error).where(Message.id == ids[1])) == "settled"


def test_the_scheduler_leaves_a_row_a_worker_is_writing_to_it(app):
    """Settling stale sends skips a row a worker holds (its outcome written, not committed yet) instead of waiting
    for it: waiting would deadlock with the worker or overwrite its outcome; the other stale row is settled."""
    table = Message.__table__
    with app.app_context():
        session = get_session()
        ids = pending_emails(session, ["late@example.com", "gone@example.com"])
        long_ago = utcnow() - timedelta(days=1)
        session.execute(
            update(table).where(table.c.id.in_(ids)).values(status="sending", attempts=1, sending_at=long_ago)
        )
        session.commit()
        with get_db(app).engine.connect() as worker:  # the worker writing its late outcome of the first row
            worker.execute(update(table).where(table.c.id == ids[0]).values(status="sent"))
            session.execute(text("SET lock_timeout = '3s'"))  # waiting for the worker fails the test, not hangs it
            counts = resolve_stale_sends(session, app.config, long_ago + timedelta(seconds=1), long_ago)
            session.commit()
            worker.commit()
        assert counts == {"stranded": 0, "unknown": 1, "resent": 0}
        statuses = dict(session.execute(select(table.c.id, table.c.status).where(table.c.id.in_(ids))).all())
        assert statuses == {ids[0]: "sent", ids[1]: "unknown"}
