"""The outbox claims its rows in one statement per batch and writes each send's outcome in the commit that stamps the
next one: a handful of commits for a batch instead of three per message; every message still arrives once (counted at
a real SMTP server), with its status history and its trace."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import event, func, select

from server.db import get_db, get_session
from server.engine import outbox
from server.engine.outbox import CLAIM_BATCH, CLAIM_MAX, claim_size, deliver
from server.models import Event, JourneyLog, Message, MessageStatusChange

from ..helpers import api_key, load_rules, pending_emails, post_event, run_worker

N = 30
#: the tables a claimed batch reads before it is rendered
READS = ("contacts", "suppressions", "consents", "templates")


@pytest.fixture
def statements(app):
    seen: list[str] = []
    engine = get_db(app).engine

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement.strip().split()[0].upper() + " " + statement)

    def commit(conn):
        seen.append("COMMIT")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", commit)
    yield seen
    event.remove(engine, "before_cursor_execute", before)
    event.remove(engine, "commit", commit)


def test_a_batch_is_claimed_in_one_statement_and_recorded_a_round_at_a_time(app, smtp_server, statements, backend):
    app.config["SMTP_CONNECTIONS"] = 1
    with app.app_context():
        session = get_session()
        messages = pending_emails(session, [f"c{i}@example.com" for i in range(N)])
        statements.clear()
        assert deliver(session, app, messages) == N

    claims = [s for s in statements if s.startswith("UPDATE UPDATE messages SET status=") and "claimed_at=" in s]
    chunks = math.ceil(N / CLAIM_BATCH)
    assert len(claims) == chunks  # pending → sending for CLAIM_BATCH rows at once
    # per chunk: its claim, the policy's verdicts, one per send (its stamp, with the previous outcome), the last
    # outcome; and one for the look-up of what is left to do (the old outbox made three per message)
    assert statements.count("COMMIT") <= N + 3 * chunks + 1
    # the claim returns its rows (no second read of them), and on SQLite what the batch reads (contacts, the
    # policy's suppressions and consents, the templates) is read in the claim's transaction: one write lock for both
    claim = statements.index(claims[0])
    after = statements[claim + 1 :]
    assert not [
        s for s in after if s.startswith("SELECT ") and "FROM messages WHERE messages.id IN" in " ".join(s.split())
    ]
    reads = [next(i for i, s in enumerate(after) if s.startswith("SELECT ") and f"FROM {t}" in s) for t in READS]
    first_commit = after.index("COMMIT")
    assert (max(reads) < first_commit) if backend == "sqlite" else (first_commit < min(reads)), after[: max(reads) + 1]
    assert sorted(m["To"] for m in smtp_server.wait_for(N)) == sorted(f"c{i}@example.com" for i in range(N))
    with app.app_context():
        session = get_session()
        assert set(session.scalars(select(Message.status))) == {"sent"}
        assert session.scalars(select(MessageStatusChange.status)).all() == ["sent"] * N
        assert session.scalars(select(JourneyLog.action)).all() == ["send"] * N


def test_the_policy_reads_consent_and_suppressions_once_per_batch_and_still_stops_who_it_must(
    app, smtp_server, statements
):
    from datetime import timedelta

    from server.consent import record_consent, suppress
    from server.models import utcnow

    app.config["SMTP_CONNECTIONS"] = 1
    addresses = [f"c{i}@example.com" for i in range(N)]
    with app.app_context():
        session = get_session()
        messages = pending_emails(session, addresses)
        contacts = session.scalars(select(Message.contact_id).where(Message.id.in_(messages)).order_by(Message.id))
        contact = dict(enumerate(contacts))
        earlier = utcnow() - timedelta(days=1)
        record_consent(session, contact[3], "email", True, "form", at=earlier)
        record_consent(session, contact[3], "email", False, "link")  # the latest: opted out
        record_consent(session, contact[5], "email", False, "link", at=earlier)
        record_consent(session, contact[5], "email", True, "form")  # opted back in
        record_consent(session, contact[6], "sms", False, "link")  # another channel's opt-out
        suppress(session, app.config["SECRET_KEY"], "email", addresses[7], "bounced")
        suppress(session, app.config["SECRET_KEY"], "email", " C9@Example.com", "unsubscribed")  # as normalised
        suppress(session, app.config["SECRET_KEY"], "sms", addresses[11], "bounced")  # another channel's list
        session.commit()
        statements.clear()
        assert deliver(session, app, messages) == N - 3

    chunks = math.ceil(N / CLAIM_BATCH)
    assert len([s for s in statements if s.startswith("SELECT ") and "FROM suppressions" in s]) == chunks
    assert len([s for s in statements if s.startswith("SELECT ") and "FROM consents" in s]) == chunks
    stopped = {addresses[3], addresses[7], addresses[9]}
    assert sorted(m["To"] for m in smtp_server.wait_for(N - 3)) == sorted(set(addresses) - stopped)
    with app.app_context():
        session = get_session()
        status = dict(session.execute(select(Message.contact_id, Message.status)).all())
        detail = dict(
            session.execute(
                select(Message.contact_id, MessageStatusChange.detail).join(
                    MessageStatusChange, MessageStatusChange.message_id == Message.id
                )
            ).all()
        )
    assert {i for i in contact if status[contact[i]] == "suppressed"} == {3, 7, 9}
    assert (detail[contact[3]], detail[contact[7]], detail[contact[9]]) == ("unsubscribed", "bounced", "unsubscribed")


class _Ticks:
    """``time`` for the outbox: each reading of the clock a fixed *step* after the one before."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


def _claim_sizes(statements: list[str]) -> list[int]:
    """How many rows each claim among *statements* named (its ``IN (…)`` list)."""
    claims = [s for s in statements if s.startswith("UPDATE UPDATE messages SET status=") and "claimed_at=" in s]
    sizes = []
    for claim in claims:
        depth, names = 1, 1
        for char in claim.split(" IN (", 1)[1]:  # to the list's closing parenthesis (PostgreSQL's names have some)
            depth += (char == "(") - (char == ")")
            if depth == 0:
                break
            names += char == "," and depth == 1
        sizes.append(names)
    return sizes


def test_claims_grow_to_what_the_relay_takes_and_the_next_job_starts_there(app, smtp_server, statements, monkeypatch):
    """A job's first claims take CLAIM_BATCH rows; once a batch has gone out, a claim takes what goes out in two
    seconds at its rate (a fast relay here: CLAIM_MAX), and the app's next job starts with that."""
    monkeypatch.setattr(outbox, "time", _Ticks(1e-4))  # every batch goes out in a few ticks: a very fast relay
    app.config["SMTP_CONNECTIONS"] = 2
    with app.app_context():
        session = get_session()
        first = pending_emails(session, [f"f{i}@example.com" for i in range(400)])
        second = pending_emails(session, [f"s{i}@example.com" for i in range(300)])
        statements.clear()
        assert deliver(session, app, first) == 400
        # the second claim is made while the first batch is on the wire, before its rate is known
        assert _claim_sizes(statements) == [CLAIM_BATCH, CLAIM_BATCH, CLAIM_MAX, 400 - 2 * CLAIM_BATCH - CLAIM_MAX]
        statements.clear()
        assert deliver(session, app, second) == 300
        assert _claim_sizes(statements) == [CLAIM_MAX, 300 - CLAIM_MAX]
    assert len(smtp_server.wait_for(700)) == 700


def test_a_slow_relay_keeps_the_claims_small(app, smtp_server, statements, monkeypatch):
    """At a few messages a second a claimed row would wait long to be stamped in a big batch: claims stay at
    CLAIM_BATCH."""
    monkeypatch.setattr(outbox, "time", _Ticks(60.0))  # every batch takes minutes: a very slow relay
    app.config["SMTP_CONNECTIONS"] = 2
    with app.app_context():
        session = get_session()
        ids = pending_emails(session, [f"w{i}@example.com" for i in range(3 * CLAIM_BATCH)])
        statements.clear()
        assert deliver(session, app, ids) == 3 * CLAIM_BATCH
    assert _claim_sizes(statements) == [CLAIM_BATCH] * 3
    assert len(smtp_server.wait_for(3 * CLAIM_BATCH)) == 3 * CLAIM_BATCH


@pytest.mark.parametrize(
    "rate,requeue_after,size",
    [
        (10.0, 30.0, CLAIM_BATCH),  # 20 rows in two seconds: never fewer than CLAIM_BATCH
        (60.0, 30.0, 120),  # two seconds of sending
        (40.0, 10.0, CLAIM_BATCH),  # a tenth of REQUEUE_AFTER: one second, 40 rows
        (60.0, 10.0, 60),
        (400.0, 10.0, min(400, CLAIM_MAX)),
        (100_000.0, 30.0, CLAIM_MAX),
    ],
)
def test_a_claim_holds_two_seconds_of_sending_or_a_tenth_of_requeue_after(rate, requeue_after, size):
    assert claim_size(rate, {"REQUEUE_AFTER": requeue_after}) == size


def test_a_send_job_takes_the_other_due_rows_too_and_leaves_what_is_not_due(app, smtp_server, backend):
    """Under a stream of sends the first job sends in full batches; the jobs behind it find their rows gone."""
    from datetime import timedelta

    from sqlalchemy import update

    from server.engine.jobs import deliver_messages
    from server.models import utcnow

    with app.app_context():
        session = get_session()
        ids = pending_emails(session, [f"d{i}@example.com" for i in range(N)])
        later = ids[-1]  # waiting out a retry's back-off: not due
        hour = utcnow() + timedelta(hours=1)
        session.execute(update(Message).where(Message.id == later).values(next_attempt_at=hour))
        session.commit()
        assert deliver_messages([ids[0]]) == N - 1
        assert deliver_messages(ids[1:]) == 0  # their own jobs: already sent
    assert len(smtp_server.wait_for(N - 1)) == N - 1
    with app.app_context():
        session = get_session()
        statuses = {row.id: row.status for row in session.execute(select(Message.id, Message.status))}
        assert statuses.pop(later) == "pending"
        assert set(statuses.values()) == {"sent"}
        assert session.scalar(select(func.count()).select_from(MessageStatusChange)) == N - 1


def test_on_the_live_clock_a_send_is_stamped_to_the_microsecond_at_each_step(app, client, smtp_server):
    """Event received → claimed by the engine → outbox row written → claimed by the sender → handed to the
    connection → sent: each stamp to the microsecond, in that order (whole seconds hid where a send's time goes,
    ``bench_e2e`` reads them); the status history keeps whole seconds, as every engine clock does."""
    load_rules(app)
    assert post_event(client, api_key(app), email="stamps@example.com").status_code == 202
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["stamps@example.com"]
    with app.app_context():
        session = get_session()
        event_row = session.scalars(select(Event)).one()
        msg = session.scalars(select(Message)).one()
        stamps = [
            event_row.received_at,
            event_row.processed_at,
            msg.created_at,
            msg.claimed_at,
            msg.sending_at,
            msg.sent_at,
        ]
        assert all(stamp is not None for stamp in stamps) and msg.status == "sent"
        assert stamps == sorted(stamps), stamps
        assert any(stamp.microsecond for stamp in stamps[1:]), stamps
        history = session.scalars(select(MessageStatusChange.at)).all()
        assert len(history) == 1 and history[0].microsecond == 0
