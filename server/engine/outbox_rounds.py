"""Claims and rounds of the outbox: a batch claimed, each round's hand-overs stamped and its outcomes recorded.

A row is claimed (``pending`` → ``sending``) and committed before anything else, so two workers never both send
it. Just before the channel is called the row is stamped (``sending_at``, committed): a worker that dies before the
stamp never handed the message over, and the scheduler puts the row back to ``pending`` to be sent once
(:func:`resolve_stale_sends`); one that dies after it may have, and the row becomes ``unknown`` for an operator
(``NUDGE_AMBIGUOUS_SENDS=hold``) or is sent again (``resend``). :class:`Rounds` holds a delivery's state and these
steps; :mod:`.outbox_checks` adds the send-time policy, :mod:`.outbox_handoff` the rendering, :mod:`.outbox` the
job's loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Self, TypeVar, cast

from flask import Flask, current_app, has_app_context
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from ..consent import suppress
from ..db import POLL_WRITE_LOCK, database_trouble
from ..models import Contact, JourneyLog, Message, MessageStatus, MessageStatusChange, utcnow
from ..sdk import ChannelError, redact
from . import health
from .driver_sql import DriverStatement, KeptWrites
from .keys import enrolment_of
from .lanes import Item, Lanes
from .timeutil import to_dt, to_ts

log = logging.getLogger("server.engine.outbox")

#: tries of a send when the channel has no retry schedule of its own (setting ``MAX_ATTEMPTS``)
MAX_ATTEMPTS = 8
STRANDED = "the worker stopped before handing it to the channel; it goes out again"
AMBIGUOUS_HELD = (
    "the worker stopped while handing it to the channel: the provider may have it "
    "(NUDGE_AMBIGUOUS_SENDS=hold); check, and `nudge messages resend` it if it never arrived"
)
AMBIGUOUS_RESENT = "the provider may have it; sent again (NUDGE_AMBIGUOUS_SENDS=resend)"
#: seconds a round keeps writing again what it knows (its sends' outcomes, its stamps) while the database is away or
#: busy (a connection dropped by a failover or a restart): past that it gives up, and the rows it handed over become
#: ``unknown`` (or are sent again, see ``AMBIGUOUS_SENDS``) as when the worker dies
RECORD_PATIENCE = 30.0
_T = TypeVar("_T")


_TABLE = Message.__table__
#: built once, not per message: a send's stamp (fenced by its claim, see ``Delivery._stamp``; a stamp written again
#: after a commit whose answer was lost finds its own, even made ``unknown`` meanwhile: never handed over), a success
_STAMP = DriverStatement(
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("row_id"),
        or_(_TABLE.c.status == MessageStatus.SENDING.value, _TABLE.c.status == MessageStatus.UNKNOWN.value),
        _TABLE.c.attempts == bindparam("claim"),
        or_(_TABLE.c.sending_at.is_(None), _TABLE.c.sending_at == bindparam("stamp")),
    )
    .values(sending_at=bindparam("stamp"), status=MessageStatus.SENDING.value)
)
_SENT = DriverStatement(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(status=MessageStatus.SENT.value, sent_at=bindparam("at"), provider_id=bindparam("provider"), error=None)
)

#: a round's history and trace rows (every column given, see ``Delivery._sent``)
_CHANGES = DriverStatement(insert(MessageStatusChange.__table__), ("message_id", "status", "detail", "source", "at"))
_TRACES = DriverStatement(
    insert(JourneyLog.__table__), ("enrolment_id", "contact_id", "rule_id", "at", "action", "data")
)


#: the columns of a claimed row that sending it reads (see :class:`Claimed`)
_CLAIMED = (
    _TABLE.c.id,
    _TABLE.c.key,
    _TABLE.c.contact_id,
    _TABLE.c.channel,
    _TABLE.c.template,
    _TABLE.c.attempts,
    _TABLE.c.data,
)


class Claimed(NamedTuple):
    """An outbox row as its claim returned it: what the policy, the rendering and the stamps read of it."""

    id: int
    key: str
    contact_id: int | None
    channel: str
    template: str
    attempts: int  # this claim's number: it fences the stamp (see ``Rounds._stamp``)
    data: dict[str, Any]


def _current_clock() -> Callable[[], datetime]:
    """What :func:`~server.models.utcnow` asks in this context, asked once for a delivery (not per stamp): the
    app's clock, or the real time outside an app."""
    if has_app_context():
        clock = current_app.extensions.get("nudge.clock")
        if clock is not None:
            return clock
    return utcnow


def backoff(attempt: int, base: float = 30.0, cap: float = 6 * 3600.0) -> float:
    """Seconds to wait before retry *attempt* (1-based): exponential from *base* (``RETRY_BASE``), with jitter."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


class Rounds:
    """A delivery's state (session, clock, channels and their lanes) and its writes: claims, stamps, outcomes."""

    def __init__(self, session: Session, app: Flask, now: int | None = None, capture: list | None = None):
        self.session = session
        # the app itself, not ``current_app``'s proxy: each message reads it several times (links, the renderer)
        self.app: Flask = cast(Any, app)._get_current_object() if isinstance(app, LocalProxy) else app
        self.config = app.config
        self.pm = app.extensions["nudge.plugins"]
        self.fixed_now = now
        self.capture = capture  # simulation: record instead of sending
        self.channels: dict[str, list[tuple[Any, Any]]] = {}
        self.pools: dict[str, Lanes] = {}  # the lanes of each channel, kept across the batches of one job
        self._props: dict[int, dict[str, Any]] = {}
        self._parts: dict[tuple[str, str], dict[str, str]] = {}
        self._verdicts: Any = None  # the batch's suppressions and consents, read ahead (.outbox_checks)
        self._sent_now = 0
        self._last_ok = False
        self._slots: dict[tuple[str, str], float] = {}  # the next free slot of each rate limit, as far as we know
        self.resend_ambiguous = self.config.get("AMBIGUOUS_SENDS") == "resend"
        self._clock = _current_clock()
        self._kept: KeptWrites | None = None  # SQLite: the rounds' own connection (see ``_round``)
        #: the rounds whose outcomes are written but not committed yet, and their moment (see ``_saving``)
        self._unsaved: list[tuple[list[Item], datetime]] = []

    @property
    def now(self) -> int:
        return self.fixed_now if self.fixed_now is not None else to_ts(self._clock())

    @property
    def instant(self) -> datetime:
        """Now, for the row's own stamps (claimed, handed over, sent): the fixed clock's second, else the app's clock
        to the microsecond (a send's steps are milliseconds apart; whole seconds hid where its time goes). The status
        history and the journey trace keep whole seconds (:attr:`now`), as the rest of the engine."""
        return to_dt(self.fixed_now) if self.fixed_now is not None else self._clock()

    def __enter__(self) -> Self:
        # a round's short write transactions keep the lanes waiting: take SQLite's write lock as soon as it is free
        self._polling = POLL_WRITE_LOCK.set(True)
        engine = self.session.get_bind().engine
        # not for a database in memory: its one connection is the session's too (the pool's reset would undo it)
        in_memory = engine.url.database in (None, "", ":memory:")
        if engine.dialect.name == "sqlite" and self.capture is None and not in_memory:
            self._kept = KeptWrites(engine)
        return self

    def __exit__(self, *exc: Any) -> None:
        POLL_WRITE_LOCK.reset(self._polling)
        if self._kept is not None:
            self._kept.close()  # what a failed round left open is rolled back: its stamps never counted
            self._kept = None
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        for lanes in self.channels.values():
            for _channel, ctx in lanes:
                ctx.__exit__(None, None, None)
        self.channels.clear()

    def _channel(self, name: str) -> Any:
        if self.capture is not None:
            # simulation: the channel class says how it addresses contacts; nothing is configured or sent
            return self.pm.channels[name]
        return self._lanes(name)[0]

    def _lanes(self, name: str) -> list[Any]:
        """The channel's instances, one per lane (``Channel.concurrency``), each in its own batch (connection)."""
        if name not in self.channels:
            lanes = []
            try:
                first = self.pm.channel(name, self.config)
                others = [self.pm.channel(name, self.config) for _ in range(max(1, int(first.concurrency)) - 1)]
                for channel in (first, *others):
                    ctx = channel.batch()
                    ctx.__enter__()
                    lanes.append((channel, ctx))
            finally:
                if lanes:
                    self.channels[name] = lanes
        return [channel for channel, _ctx in self.channels[name]]

    def _claimable(self) -> Any:
        """Pending and due: a retry waits out its back-off even when an older (duplicate) job names it."""
        instant = self.instant
        return (Message.status == MessageStatus.PENDING.value) & (
            Message.next_attempt_at.is_(None) | (Message.next_attempt_at <= instant)
        )

    def _claim_many(self, message_ids: list[int] | None, oldest: int = 0) -> list[Claimed]:
        """Claim the claimable rows of *message_ids* (None: the *oldest* claimable rows) in one statement that
        returns what sending them reads; return them in that order. On SQLite not committed: the caller reads what
        the batch needs in the same transaction (SQLite's write lock taken once for both), then commits, before any
        of them is sent; elsewhere committed at once.

        On PostgreSQL the oldest rows another worker is claiming are skipped, not waited for: they are its own.
        """
        table = _TABLE
        if message_ids is None:
            query = select(table.c.id).where(self._claimable()).order_by(table.c.next_attempt_at, table.c.id)
            query = query.limit(oldest)
            if self.session.get_bind().dialect.name == "postgresql":  # selected once, past the rows others lock
                cte = query.with_for_update(skip_locked=True).cte("chosen").prefix_with("MATERIALIZED")
            else:
                cte = query.cte("chosen")
            chosen = table.c.id == cte.c.id
        else:
            chosen = table.c.id.in_(message_ids)
        rows = self.session.connection().execute(
            update(table)
            .where(chosen, self._claimable())
            .values(
                status=MessageStatus.SENDING.value,
                claimed_at=self.instant,
                sending_at=None,
                attempts=table.c.attempts + 1,
            )
            .returning(*_CLAIMED)
        )
        claimed = {row[0]: Claimed._make(row) for row in rows}  # plain rows, no ORM objects (nor their identity map)
        if self.session.get_bind().dialect.name != "sqlite":
            self.session.commit()  # no database-wide write lock to spare: the claim stands before anything is read
        if message_ids is None:
            return [claimed[message_id] for message_id in sorted(claimed)]
        return [claimed[message_id] for message_id in message_ids if message_id in claimed]

    def _stamp(self, msg: Claimed, stamp: datetime | None = None) -> bool:
        """Commit that *msg* is being handed to its channel now (or at *stamp*); False if this claim was taken back
        meanwhile.

        The claim's attempt number fences it: a row the scheduler gave back (this worker looked dead) and
        another worker claimed again is not stamped, nor sent, here.
        """
        params = {"row_id": msg.id, "claim": msg.attempts, "stamp": self.instant if stamp is None else stamp}
        return _STAMP.run(self.session.connection(), [params]) > 0

    def _stamp_many(self, items: list[Item]) -> list[Item]:
        """Commit that *items* are being handed to their channel now (and what was recorded since)."""
        stamp = self.instant  # the same if written again: a commit whose answer was lost may have it already
        return self._saving(lambda: self._stamp_round(items, stamp), commits=True)

    def _stamp_round(self, items: list[Item], stamp: datetime) -> list[Item]:
        kept = self._round()
        if kept is not None:
            try:
                go = self._stamp_kept(kept, items, stamp)
            except BaseException:
                kept.rollback()
                raise
            kept.commit()
            return go
        connection = self.session.connection()
        if len(items) < 2 or not connection.dialect.supports_sane_multi_rowcount:
            go = [item for item in items if self._stamp(item.msg, stamp)]
        else:  # one statement for them all; only when one was not stamped, ask which
            params = [{"row_id": item.msg.id, "claim": item.msg.attempts, "stamp": stamp} for item in items]
            go = items
            if _STAMP.run(connection, params) != len(items):
                stamped = set(
                    connection.execute(
                        select(_TABLE.c.id, _TABLE.c.attempts).where(
                            _TABLE.c.id.in_([item.msg.id for item in items]), _TABLE.c.sending_at == stamp
                        )
                    ).all()
                )
                go = [item for item in items if (item.msg.id, item.msg.attempts) in stamped]
        self.session.commit()
        return go  # one not stamped was taken back and claimed again elsewhere: that claim sends it

    def _stamp_kept(self, kept: KeptWrites, items: list[Item], stamp: datetime) -> list[Item]:
        """Stamp *items* on the rounds' own connection, a statement each (its row count says whether it may go)."""
        params = [{"row_id": item.msg.id, "claim": item.msg.attempts, "stamp": stamp} for item in items]
        sql = _STAMP.plan(kept.dialect)[0]
        cursor = kept.cursor
        go = []
        for item, values in zip(items, _STAMP.values(kept.dialect, params), strict=True):
            cursor.execute(sql, values)
            if cursor.rowcount > 0:
                go.append(item)
        return go

    def _round(self, begin: bool = True) -> KeptWrites | None:
        """The rounds' own connection, in a transaction (begun now when *begin*), or None: the round goes through
        the session (not SQLite; or the session has a transaction of its own, a write of the next batch's
        preparation say: SQLite has one writer, so the round joins it, as it always did).

        A round (its outcomes, then its stamps) is one transaction either way, committed before its sends start:
        what a crash leaves does not change.
        """
        kept = self._kept
        if kept is None or kept.open:
            return kept
        if not begin or self.session.in_transaction():
            return None
        kept.begin()
        return kept

    def _end_round(self) -> None:
        """Commit the outcomes the last round recorded on the rounds' own connection (before the session writes)."""
        if self._kept is not None and self._kept.open:
            self._kept.commit()
            self._unsaved.clear()

    def _saving(self, write: Callable[[], _T], commits: bool) -> _T:
        """Run *write*, a round's writes (when *commits*, ending with a commit of them and of the outcomes before).

        When the database fails it for being away or busy (a connection dropped by a failover or a restart), what
        is known in memory is not lost: roll back, write the outcomes not committed yet again on a new connection,
        then *write*, waiting longer each time, for up to :data:`RECORD_PATIENCE` seconds; then raise (the rows
        handed over become ``unknown``, as when the worker dies). Any other error is raised at once.
        """
        started, tries = time.monotonic(), 0
        while True:
            try:
                if tries:
                    self._replay()
                done = write()
            except Exception as exc:
                trouble = database_trouble(exc)
                if trouble is None or trouble.status != 503:
                    raise
                delay = min(2.0, 0.05 * 2**tries)
                if time.monotonic() - started + delay > RECORD_PATIENCE:
                    raise
                tries += 1
                log.warning(
                    "the database failed a round of sends (%s); written again in %.2fs (try %d)", trouble, delay, tries
                )
                self._rollback()
                time.sleep(delay)
                continue
            if commits:
                self._unsaved.clear()
            return done

    def _rollback(self) -> None:
        """Roll back the round's transaction and the session's (the pool gives the next a live connection)."""
        if self._kept is not None:
            self._kept.rollback()
        try:
            self.session.rollback()
        except Exception as exc:  # a connection gone: the next try fails (or finds a new one) and says so
            log.debug("rolling back after a failed round: %s", exc)

    def _replay(self) -> None:
        """Write again the outcomes a rollback undid, of the rows still under this claim (a commit whose answer was
        lost may have had them already: a row put back to ``pending`` and claimed again is not touched)."""
        for items, at in self._unsaved:
            ids = [item.msg.id for item in items]
            rows = self.session.connection().execute(
                select(_TABLE.c.id, _TABLE.c.attempts).where(
                    _TABLE.c.id.in_(ids),
                    or_(_TABLE.c.status == MessageStatus.SENDING.value, _TABLE.c.status == MessageStatus.UNKNOWN.value),
                )
            )
            ours = set(rows.all())
            self._write_outcomes([item for item in items if (item.msg.id, item.msg.attempts) in ours], at)

    def _record(self, items: list[Item]) -> None:
        """Write the outcome of finished sends; committed with the next stamps, or at the end of the batch."""
        at = self.instant  # the round's outcomes are written together: one moment for them all
        for item in items:  # counted and told once, however often the database has them written
            msg, exc = item.msg, item.error
            if isinstance(exc, ChannelError):
                self._log_failure(msg, exc)
            elif exc is not None:  # the channel's own bug: fail this message, keep the worker alive
                log.error("sending %s failed", msg.key, exc_info=exc)
            else:
                self._sent_now += 1
            self._last_ok = exc is None
        self._saving(lambda: self._write_outcomes(items, at), commits=False)
        self._unsaved.append((items, at))

    def _write_outcomes(self, items: list[Item], at: datetime) -> None:
        """Write the outcomes of *items*, finished at *at*; the caller commits."""
        changes: list[dict[str, Any]] = []
        traces: list[dict[str, Any]] = []
        sent: list[dict[str, Any]] = []
        second = to_ts(at) if self.fixed_now is None else self.fixed_now
        for item in items:
            msg, exc = item.msg, item.error
            if isinstance(exc, ChannelError):
                self._failure(msg, item.contact, self._lanes(msg.channel)[0], exc, told=True)
            elif exc is not None:
                text = f"{type(exc).__name__}: {exc}"
                self._channel_error(msg.channel, text)
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=text)
            else:
                assert item.result is not None
                self._sent(msg, item.result.provider_id, changes, traces, sent, at=(at, second))
        # the round's updates, status history and trace lines in one statement each, not a unit-of-work flush
        kept = self._round(begin=len(sent) == len(items))  # a failure writes through the session: the round too
        if kept is not None:
            try:
                for statement, rows in ((_SENT, sent), (_CHANGES, changes), (_TRACES, traces)):
                    if rows:
                        statement.executemany(kept.cursor, kept.dialect, rows)
            except BaseException:
                kept.rollback()
                raise
            return
        if sent:
            _SENT.run(self.session.connection(), sent)
        if changes:
            _CHANGES.run(self.session.connection(), changes)
        if traces:
            _TRACES.run(self.session.connection(), traces)

    def _sent(
        self,
        msg: Claimed,
        provider_id: str | None,
        changes: list | None = None,
        traces: list | None = None,
        rows: list | None = None,
        at: tuple[datetime, int] | None = None,
    ) -> None:
        """Record that *msg* went out; its update, history and trace rows go to *rows*, *changes* and *traces*
        when given (for the caller to write together), stamped *at* (the instant and its second; default now)."""
        instant, second = (self.instant, self.now) if at is None else at
        update_row = {"row_id": msg.id, "at": instant, "provider": provider_id}
        if rows is None:
            _SENT.run(self.session.connection(), [update_row])
        else:
            rows.append(update_row)
        change = {"message_id": msg.id, "status": MessageStatus.SENT.value, "detail": None, "source": "worker"}
        change["at"] = to_dt(second)  # the history ticks in whole seconds, as every status change does
        trace = self._trace_row(msg, "send", now=second)
        if changes is None or traces is None:
            self.session.add(MessageStatusChange(**change))
            if trace is not None:
                self.session.add(JourneyLog(**trace))
            return
        changes.append(change)
        if trace is not None:
            traces.append(trace)

    def _finish(self, msg: Claimed, status: str, detail: str | None = None, **values: Any) -> None:
        # on the connection: no flush of what the batch added to the session, no ORM synchronisation
        table = Message.__table__
        self.session.connection().execute(update(table).where(table.c.id == msg.id).values(status=status, **values))
        self.session.add(MessageStatusChange(message_id=msg.id, status=status, detail=detail, at=to_dt(self.now)))

    def _effect(self, msg: Claimed, action: str, **data: Any) -> None:
        row = self._trace_row(msg, action, **data)
        if row is not None:
            self.session.add(JourneyLog(**row))

    def _trace_row(self, msg: Claimed, action: str, now: int | None = None, **data: Any) -> dict[str, Any] | None:
        """The journey trace line of *msg*'s *action* (at second *now*, default now), or None for a message that is
        nobody's."""
        if msg.contact_id is None:
            return None
        info = msg.data or {}
        enrolment = info.get("enrolment")
        if enrolment is None:
            enrolment = enrolment_of(msg.key)
        return {
            "enrolment_id": enrolment,
            "contact_id": msg.contact_id,
            "rule_id": info.get("rule"),
            "at": self.now if now is None else now,
            "action": action,
            "data": {"channel": msg.channel, "template": msg.template, "message": msg.id, **data},
        }

    def _put_back(self, msg: Claimed, resume: float, detail: str) -> None:
        """Pending again from *resume* on, without counting this claim as an attempt; the caller commits. Only while
        the row is still this claim's (written again after a commit whose answer was lost, it finds it is not)."""
        table = Message.__table__
        result = self.session.connection().execute(
            update(table)
            .where(
                table.c.id == msg.id, table.c.status == MessageStatus.SENDING.value, table.c.attempts == msg.attempts
            )
            .values(
                status=MessageStatus.PENDING.value,
                attempts=table.c.attempts - 1,
                claimed_at=None,
                next_attempt_at=to_dt(resume),
            )
        )
        if result.rowcount:
            change = MessageStatusChange(message_id=msg.id, status="deferred", detail=detail, at=to_dt(self.now))
            self.session.add(change)

    def _log_failure(self, msg: Claimed, exc: ChannelError) -> None:
        log.warning("send of %s failed (attempt %d): %s", msg.key, msg.attempts, redact(exc.message))

    def _failure(
        self, msg: Claimed, contact: Contact | None, channel: Any, exc: ChannelError, told: bool = False
    ) -> None:
        """Write what a failed try means for *msg* (retried, failed, unknown), logged unless *told* already."""
        if not told:
            self._log_failure(msg, exc)
        if exc.suppress and contact is not None and channel.address_field:
            address = getattr(contact, channel.address_field, None)
            if address:
                suppress(self.session, self.config["SECRET_KEY"], msg.channel, address, exc.suppress, exc.message)
                self._verdicts = None  # read ahead before this: later messages of the batch ask the database
        # a bounce too: one is a recipient's, but a server that refuses every recipient bounces them all
        self._channel_error(msg.channel, exc.message)
        schedule = getattr(channel, "retry_schedule", None)
        limit = len(schedule) if schedule else int(self.config.get("MAX_ATTEMPTS", MAX_ATTEMPTS))
        if exc.ambiguous and not getattr(channel, "idempotent", False) and not self.resend_ambiguous:
            self._finish(msg, MessageStatus.UNKNOWN.value, exc.message, error=exc.message)
        elif exc.permanent or msg.attempts >= limit:
            self._finish(msg, MessageStatus.FAILED.value, exc.message, error=exc.message)
        else:
            delay = exc.retry_after or (
                schedule[msg.attempts]
                if schedule and msg.attempts < len(schedule)
                else backoff(msg.attempts, base=float(self.config.get("RETRY_BASE", 30.0)))
            )
            detail = f"{exc.message}; {AMBIGUOUS_RESENT}" if exc.ambiguous and self.resend_ambiguous else exc.message
            self._finish(
                msg,
                MessageStatus.PENDING.value,
                detail,
                error=detail,
                claimed_at=None,
                sending_at=None,
                next_attempt_at=to_dt(self.now) + timedelta(seconds=delay),
            )

    def _channel_error(self, channel: str, text: str) -> None:
        if self.capture is None:
            health.note_error(self.session, channel, text, to_dt(self.now))


def resolve_stale_sends(
    session: Session, config: Any, stale: Any, instant: Any, idempotent: tuple[str, ...] = ()
) -> dict[str, int]:
    """Settle ``sending`` rows whose worker vanished (claimed, or handed over, before *stale*).

    Never handed to the channel (no ``sending_at``): back to ``pending``, sent once. Handed over: the
    provider may have it, so ``unknown`` (``AMBIGUOUS_SENDS=hold``) or ``pending`` again (``resend``, and
    always for the *idempotent* channels, whose providers de-duplicate by key). Each move is in the
    message's status history. The caller commits. On PostgreSQL a row a worker is writing (its late outcome) is
    left to it: waiting would only overwrite what it writes, or deadlock with it.
    :return: ``{"stranded": …, "unknown": …, "resent": …}`` row counts.
    """
    table = Message.__table__
    sending = table.c.status == MessageStatus.SENDING.value
    pending = {
        "status": MessageStatus.PENDING.value,
        "claimed_at": None,
        "sending_at": None,
        "next_attempt_at": instant,
    }
    resend = config.get("AMBIGUOUS_SENDS") == "resend"
    moves = [
        ("stranded", (table.c.sending_at.is_(None), table.c.claimed_at <= stale), pending, STRANDED),
        (
            "resent",
            (table.c.sending_at <= stale, table.c.channel.in_(idempotent)),
            pending,
            "the provider may have it; sent again: it de-duplicates by key (an idempotent channel)",
        ),
        (
            "resent" if resend else "unknown",
            (table.c.sending_at <= stale,),
            pending if resend else {"status": MessageStatus.UNKNOWN.value},
            AMBIGUOUS_RESENT if resend else AMBIGUOUS_HELD,
        ),
    ]
    counts = {"stranded": 0, "unknown": 0, "resent": 0}
    postgresql = session.get_bind().dialect.name == "postgresql"
    for name, where, values, detail in moves:
        chosen = select(table.c.id).where(sending, *where).with_for_update(skip_locked=True)  # a worker's: skipped
        settle = update(table).where(table.c.id.in_(chosen)) if postgresql else update(table).where(sending, *where)
        ids = list(session.connection().execute(settle.values(error=detail, **values).returning(table.c.id)).scalars())
        for message_id in ids:
            session.add(
                MessageStatusChange(
                    message_id=message_id, status=values["status"], detail=detail, source="scheduler", at=instant
                )
            )
        counts[name] += len(ids)
        if ids:
            log.warning("%d send(s) whose worker stopped: %s", len(ids), detail)
    return counts
