"""The rounds of a delivery (each send's stamp, each outcome), on SQLite on a connection of their own: a claim taken
back before its stamp is still not sent, the others are, and every outcome is committed where the session can read
it; on PostgreSQL the same through the session."""

from __future__ import annotations

from sqlalchemy import select, update

from server.db import get_db, get_session
from server.engine.outbox import Delivery, Prepared
from server.models import JourneyLog, Message, MessageStatusChange

from ..helpers import pending_emails

N = 8


class TakenBack(Delivery):
    """A delivery whose claims of *rows* another worker takes over (the scheduler gave them back: this worker
    looked dead) once the batch is rendered, before any of it is stamped."""

    rows: list[int] = []

    def _send_prepared(self, prepared: Prepared, idle) -> int:
        table = Message.__table__
        with get_db(self.app).engine.begin() as other:  # another worker's claim, on a connection of its own
            other.execute(
                update(table).where(table.c.id.in_(self.rows)).values(attempts=table.c.attempts + 1, sending_at=None)
            )
        TakenBack.rows = []
        return super()._send_prepared(prepared, idle)


def test_a_claim_taken_back_before_its_stamp_is_not_sent_and_the_rest_are_recorded(app, smtp_server, backend):
    app.config["SMTP_CONNECTIONS"] = 4
    with app.app_context():
        session = get_session()
        ids = pending_emails(session, [f"c{i}@example.com" for i in range(N)])
        taken = [ids[1], ids[6]]  # one in the first round of four, one in the second
        TakenBack.rows = list(taken)
        with TakenBack(session, app) as delivery:
            assert delivery.deliver(ids) == N - 2

    assert sorted(m["To"] for m in smtp_server.wait_for(N - 2)) == sorted(
        f"c{i}@example.com" for i in range(N) if i not in (1, 6)
    )
    with app.app_context():
        session = get_session()
        rows = {row.id: row for row in session.execute(select(Message.id, Message.status, Message.attempts))}
        for message_id in ids:
            if message_id in taken:  # the other worker's claim (attempt 2) sends it; this one left it alone
                assert (rows[message_id].status, rows[message_id].attempts) == ("sending", 2)
            else:
                assert (rows[message_id].status, rows[message_id].attempts) == ("sent", 1)
        sent = [i for i in ids if i not in taken]
        assert sorted(session.scalars(select(MessageStatusChange.message_id))) == sent
        assert session.scalars(select(JourneyLog.action)).all() == ["send"] * (N - 2)
        assert None not in session.scalars(select(Message.sending_at).where(Message.id.in_(sent)))
