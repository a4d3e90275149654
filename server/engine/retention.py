"""Retention: deleting what is older than its configured age, in short batches, never what is still needed.

The scheduler runs a cleanup every ``CLEANUP_INTERVAL`` seconds, a few batches a tick (:class:`Scheduled`);
``nudge cleanup`` runs one by hand. Every table is walked from its oldest row by primary key (ids grow with time),
``BATCH`` rows at a time, each batch deleted in its own short transaction (SQLite: no writer waits long; PostgreSQL:
no long lock), and the walk stops at the first row younger than the cut-off. What is never deleted (docs/retention.md):
rows the stats rollup has not counted yet (the cleanup stops at its watermarks; by hand it runs the rollup to the
end first), the journeys in flight and what they read (their trace, the event that started them, their outbox rows),
outbox rows not final, each contact's latest journey in every rule (entry policies ``once`` and ``once every`` read
it), and the consent ledger and suppressions, which are never expired (compliance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from ..db import affected_rows, read_only
from ..links import MAX_AGE as LINK_MAX_AGE
from ..models import (
    AdminSession,
    Enrolment,
    EnrolmentState,
    Event,
    FormSubmission,
    IdempotencyRecord,
    JourneyLog,
    Message,
    MessageStatusChange,
    ProviderReceipt,
    StatWatermark,
    utcnow,
)
from ..models.journeys import EVENT_IN_FLIGHT
from .keys import enrolment_of
from .timeutil import to_ts

#: rows deleted per transaction
BATCH = 5000
#: journeys in flight: their rows are kept whatever their age
IN_FLIGHT = (EnrolmentState.ACTIVE.value, EnrolmentState.HELD.value, EnrolmentState.PARKED.value)
#: outbox statuses that are final (``unknown`` waits for an operator; pending and sending are not done)
FINAL = ("sent", "failed", "suppressed", "cancelled")
#: event name endings of tracking hits (``email.opened``, ``email.clicked``)
TRACKING = ("opened", "clicked")
#: admin sessions unused this long are gone (their idle time-out, 12 hours, ended them long before)
SESSION_KEEP = timedelta(days=30)
#: stored ``Idempotency-Key`` answers this old are gone (a key is replayed for 24 hours)
IDEMPOTENCY_KEEP = timedelta(days=7)

#: the tables a cleanup walks, in its order, each with the setting naming its age in days (None: fixed)
TABLES: tuple[tuple[str, str | None], ...] = (
    ("tracking hits", "RETAIN_TRACKING_DAYS"),
    ("events", "RETAIN_EVENTS_DAYS"),
    ("journey_log", "RETAIN_JOURNEY_LOG_DAYS"),
    ("message_status_changes", "RETAIN_MESSAGES_DAYS"),
    ("messages", "RETAIN_MESSAGES_DAYS"),
    ("enrolments", "RETAIN_ENROLMENTS_DAYS"),
    ("provider_receipts", "RETAIN_RECEIPTS_DAYS"),
    ("idempotency_keys", None),
    ("admin_sessions", None),
    ("held sign-up changes", None),
)


@dataclass
class _Walk:
    """One table's walk: its rows by id, the age column that stops it, and what of a batch may go."""

    table: Any
    #: the column read per row: at or past ``young`` the walk stops (every later row is younger)
    age: Any
    young: Any
    #: the SQL condition a row must meet to be deleted
    doomed: Any
    #: at most this id (a rollup watermark); None: no bound
    upto: int | None = None
    #: extra columns read per row, for ``pick``
    extra: Sequence[Any] = ()
    #: keeps the ids of a batch that may go (the checks SQL cannot make cheaply)
    pick: Callable[[Session, list[Any]], list[int]] | None = None
    #: runs before a batch's rows are deleted (in the same transaction): their dependants go first
    before: Callable[[Session, list[int]], None] | None = None
    #: the row stays, these columns are emptied instead (what is deleted is a value, not the row)
    clear: dict[str, Any] | None = None


class Cleanup:
    """One cleanup run at *now*: :meth:`run` yields (table, rows deleted) batch by batch.

    :param dry_run: count what would go, delete nothing.
    :param roll_up: run the stats rollup to the end first (by hand). The scheduler's tick rolls a few batches up
        every second, and a cleanup there must not hold the tick for a long backlog: it stops at the watermarks.
    """

    def __init__(
        self,
        session: Session,
        config: Any,
        now: datetime | None = None,
        *,
        dry_run: bool = False,
        batch: int = BATCH,
        roll_up: bool = True,
    ) -> None:
        self.roll_up = roll_up
        self.session = session
        self.config = config
        self.now = now or utcnow()
        self.dry_run = dry_run
        self.batch = batch

    def cutoff(self, setting: str) -> datetime:
        """The instant before which rows kept for *setting* days go."""
        return self.now - timedelta(days=int(self.config[setting]))

    def run(self) -> Iterator[tuple[str, int]]:
        """Roll the stats up first, then walk each table; yields (table, deleted) after each batch."""
        from .rollup import rollup

        if self.roll_up:  # counted before the raw rows go (a dry run too, to count what a real one would delete)
            rollup(self.session, limit=1_000_000)  # it stops when nothing is new
        for name, _setting in TABLES:
            walk = getattr(self, "_" + name.replace(" ", "_").replace("-", "_"))()
            if walk is None:
                continue
            for count in self._walk(walk):
                yield name, count

    def _walk(self, walk: _Walk) -> Iterator[int]:
        session, table = self.session, walk.table
        after: int | None = None
        while True:
            query = select(table.c.id, walk.age, *walk.extra).order_by(table.c.id).limit(self.batch)
            if after is not None:
                query = query.where(table.c.id > after)
            if walk.upto is not None:
                query = query.where(table.c.id <= walk.upto)
            read_only(session)  # SQLite: a read takes no write lock (BEGIN DEFERRED)
            rows = list(session.execute(query))
            ids = walk.pick(session, rows) if walk.pick is not None and rows else [row[0] for row in rows]
            session.rollback()  # end the read: the delete below is a short transaction of its own
            if not rows:
                return
            after = rows[-1][0]
            if ids:
                yield self._delete(walk, ids)
            if any(row[1] is not None and row[1] >= walk.young for row in rows):
                return  # past the cut-off: every later row is younger

    def _delete(self, walk: _Walk, ids: list[int]) -> int:
        session, table = self.session, walk.table
        condition = and_(table.c.id.in_(ids), walk.doomed)
        try:
            if self.dry_run:
                read_only(session)
                count = int(session.scalar(select(func.count()).select_from(table).where(condition)) or 0)
                session.rollback()
                return count
            if walk.before is not None:
                chosen = list(session.scalars(select(table.c.id).where(condition)))
                if not chosen:
                    session.rollback()
                    return 0
                walk.before(session, chosen)
                condition = table.c.id.in_(chosen)
            if walk.clear is not None:
                count = affected_rows(session.execute(update(table).where(condition).values(**walk.clear)))
            else:
                count = affected_rows(session.execute(delete(table).where(condition)))
            session.commit()
            return count
        except BaseException:
            session.rollback()
            raise

    def _watermark(self, source: str) -> int:
        read_only(self.session)
        mark = self.session.get(StatWatermark, source)
        last = mark.last_id if mark is not None else 0
        self.session.rollback()
        return last

    # -- the tables ------------------------------------------------------------------------------------------------
    def _events_walk(self, setting: str, only: Any = None) -> _Walk:
        table = Event.__table__
        cutoff = self.cutoff(setting)
        doomed = and_(table.c.received_at < cutoff, table.c.processed_at.is_not(None))
        if only is not None:
            doomed = and_(doomed, only)
        upto = self._watermark("events")

        def pick(session: Session, rows: list[Any]) -> list[int]:
            ids = [row[0] for row in rows]
            started = set(  # the events that started journeys in flight: their props are ``event.*`` there
                session.scalars(  # the very text of the partial index's condition: the planners then use it
                    select(Enrolment.event_id).where(Enrolment.event_id.in_(ids), text(EVENT_IN_FLIGHT))
                )
            )
            return [i for i in ids if i not in started]

        return _Walk(table, table.c.received_at, cutoff, doomed, upto=upto, pick=pick)

    def _tracking_hits(self) -> _Walk | None:
        if self.config["RETAIN_TRACKING_DAYS"] >= self.config["RETAIN_EVENTS_DAYS"]:
            return None  # the events' own walk removes them as early
        name = Event.__table__.c.name
        return self._events_walk("RETAIN_TRACKING_DAYS", or_(*(name.like(f"%.{end}") for end in TRACKING)))

    def _events(self) -> _Walk:
        return self._events_walk("RETAIN_EVENTS_DAYS")

    def _journey_log(self) -> _Walk:
        table = JourneyLog.__table__
        cutoff = to_ts(self.cutoff("RETAIN_JOURNEY_LOG_DAYS"))
        in_flight = exists().where(Enrolment.id == table.c.enrolment_id, Enrolment.state.in_(IN_FLIGHT))
        doomed = and_(table.c.at < cutoff, ~in_flight)
        return _Walk(table, table.c.at, cutoff, doomed, upto=self._watermark("journey_log"))

    def _message_status_changes(self) -> _Walk:
        table = MessageStatusChange.__table__
        cutoff = self.cutoff("RETAIN_MESSAGES_DAYS")
        return _Walk(table, table.c.at, cutoff, table.c.at < cutoff, upto=self._watermark("message_status"))

    def _messages(self) -> _Walk:
        table = Message.__table__
        cutoff = self.cutoff("RETAIN_MESSAGES_DAYS")
        doomed = and_(table.c.created_at < cutoff, table.c.status.in_(FINAL))
        mark = self._watermark("message_status")

        def pick(session: Session, rows: list[Any]) -> list[int]:
            journeys = {row[0]: enrolment_of(row[2]) for row in rows}
            wanted = {e for e in journeys.values() if e is not None}
            flying = (
                set(
                    session.scalars(
                        select(Enrolment.id).where(Enrolment.id.in_(wanted), Enrolment.state.in_(IN_FLIGHT))
                    )
                )
                if wanted
                else set()
            )
            uncounted = set(  # a status change the rollup has not read yet: its message stays until it has
                session.scalars(
                    select(MessageStatusChange.message_id).where(
                        MessageStatusChange.message_id.in_(list(journeys)), MessageStatusChange.id > mark
                    )
                )
            )
            return [i for i, enr in journeys.items() if enr not in flying and i not in uncounted]

        def before(session: Session, ids: list[int]) -> None:
            session.execute(delete(MessageStatusChange).where(MessageStatusChange.message_id.in_(ids)))

        return _Walk(table, table.c.created_at, cutoff, doomed, extra=(table.c.key,), pick=pick, before=before)

    def _enrolments(self) -> _Walk:
        table = Enrolment.__table__
        cutoff = to_ts(self.cutoff("RETAIN_ENROLMENTS_DAYS"))
        later = aliased(Enrolment)
        newer = exists().where(
            later.contact_id == table.c.contact_id, later.rule_id == table.c.rule_id, later.id > table.c.id
        )
        doomed = and_(
            table.c.state.in_((EnrolmentState.DONE.value, EnrolmentState.EXITED.value)),
            table.c.finished < cutoff,
            newer,
        )
        # a journey finishes after it entered: once one entered after the cut-off, every later one is younger
        return _Walk(table, table.c.entered, cutoff, doomed)

    def _provider_receipts(self) -> _Walk:
        table = ProviderReceipt.__table__
        cutoff = self.cutoff("RETAIN_RECEIPTS_DAYS")
        return _Walk(table, table.c.received_at, cutoff, table.c.received_at < cutoff)

    def _idempotency_keys(self) -> _Walk:
        table = IdempotencyRecord.__table__
        cutoff = self.now - IDEMPOTENCY_KEEP
        return _Walk(table, table.c.created_at, cutoff, table.c.created_at < cutoff)

    def _admin_sessions(self) -> _Walk:
        table = AdminSession.__table__
        cutoff = self.now - SESSION_KEEP
        # sessions are touched as they are used: not in id order, so the walk reads them all (a few rows)
        return _Walk(table, table.c.created_at, self.now + timedelta(days=1), table.c.last_seen_at < cutoff)

    def _held_sign_up_changes(self) -> _Walk:
        """What double opt-in sign-ups never confirmed held for the contact: useless once their link expired."""
        table = FormSubmission.__table__
        cutoff = self.now - timedelta(seconds=LINK_MAX_AGE["confirm"])
        doomed = and_(table.c.held.is_not(None), table.c.submitted_at < cutoff)
        return _Walk(table, table.c.submitted_at, cutoff, doomed, clear={"held": None})


def clean(session: Session, config: Any, now: datetime | None = None, **options: Any) -> dict[str, int]:
    """Run a whole cleanup; *options* as :class:`Cleanup`'s. :return: rows deleted (dry: to delete) per table."""
    counts = {name: 0 for name, _ in TABLES}
    for name, count in Cleanup(session, config, now, **options).run():
        counts[name] += count
    return counts


class Scheduled:
    """The scheduler's cleanup: one every ``CLEANUP_INTERVAL`` seconds, worked off ``per_tick`` batches a tick."""

    def __init__(self, per_tick: int = 4) -> None:
        self.per_tick = per_tick
        self.next_at: float | None = None
        self.running: Iterator[tuple[str, int]] | None = None
        self.counts: dict[str, int] = {}

    def tick(self, session: Session, config: Any, now: datetime, *, finish: bool = False) -> dict[str, int] | None:
        """Advance the cleanup by a few batches (all of them with *finish*) when one is due.

        :return: its counts (tables with nothing deleted left out) when a run just ended, else None.
        """
        ts = now.timestamp()
        if self.running is None:
            if self.next_at is not None and ts < self.next_at:
                return None
            self.next_at = ts + float(config["CLEANUP_INTERVAL"])
            self.running, self.counts = Cleanup(session, config, now, roll_up=False).run(), {}
        for _ in range(10**9 if finish else self.per_tick):
            step = next(self.running, None)
            if step is None:
                self.running = None
                return {name: n for name, n in self.counts.items() if n}
            self.counts[step[0]] = self.counts.get(step[0], 0) + step[1]
        return None


__all__ = ["BATCH", "TABLES", "Cleanup", "Scheduled", "clean"]
