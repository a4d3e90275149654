"""RQ jobs and the scheduler tick. Each job claims its rows in the database, so a job delivered twice
(or a Redis that lost its jobs) never does the work twice or not at all."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update

from ..db import database_trouble, get_session, log_failure
from ..models import (
    Contact,
    Enrolment,
    EnrolmentState,
    Event,
    Message,
    MessageStatus,
    ScheduleTimer,
    TriggerTimer,
    utcnow,
)
from ..queue import get_queue
from . import attribution, bulk, dispatch, failures, runtime, setwise
from .context import EngineContext
from .outbox import JOB_MORE, deliver, resolve_stale_sends
from .timeutil import to_dt, to_ts

log = logging.getLogger(__name__)

#: enrolments one job advances
BATCH = 1000
#: seconds a leased batch belongs to its job; after that the scheduler may hand it to another (``ENGINE_LEASE``)
LEASE = 120
#: events claimed per stats batch (of each source) the job folds after its work
ROLLUP_EVENTS = 2000
#: events per job when the scheduler re-enqueues events whose first job was lost (or is slow)
RECOVERY_BATCH = 100
#: leased enrolment ids the scheduler remembers until their leases run out, to enqueue their jobs again when Redis
#: comes back from an outage (a job lost with it would leave its batch waiting out the lease); beyond this many the
#: oldest batches are forgotten, and wait out their leases as before
REMEMBERED_LEASES = 200_000


def _ctx(session, now: int | None = None) -> EngineContext:
    app = current_app
    plugins = app.extensions["nudge.plugins"]
    if now is not None:
        return EngineContext(session, app.config, now, plugins=plugins)
    instant = utcnow()
    return EngineContext(session, app.config, to_ts(instant), plugins=plugins, instant=instant)


def _lock_contact(ctx: EngineContext, contact_id: int) -> None:
    """Serialise work on one contact across workers (PostgreSQL row lock; SQLite has one writer anyway)."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        ctx.session.execute(select(Contact.id).where(Contact.id == contact_id).with_for_update())


def _send_later(message_ids: list[int], now: int | None = None) -> None:
    """Hand new outbox rows to the send queue (on the engine clock the job ran on, when it was given one)."""
    if message_ids:
        get_queue().enqueue_send(deliver_messages, message_ids, **({} if now is None else {"now": now}))


def process_events(event_ids: list[int], now: int | None = None) -> int:
    """Match stored events against the rules and run the journeys they start or resume.

    One transaction for the batch: the events are claimed (``processed_at``), their journeys run
    and the outbox rows are written together. Besides its own events the job claims other pending ones, oldest
    first, up to ``ENGINE_EVENT_BATCH`` in all, so that a worker handles events in large batches whatever the
    jobs carry (their own jobs then find nothing left). If a journey fails, the claimed batch is
    redone one event per savepoint so the others still go through; a failed event is put back unprocessed, to be
    retried after a back-off (parked after ``MAX_ATTEMPTS`` tries, see :mod:`.failures`).
    :param now: the engine clock (UNIX seconds) when the scheduler runs on one; default the wall clock.
    :return: how many events this call processed (others were already done, or are waiting out a back-off).
    """
    return run_events(event_ids, now)[0]


def run_events(
    event_ids: list[int], now: int | None = None, when_full: Callable[[], Any] | None = None
) -> tuple[int, int]:
    """:func:`process_events`; return how many events were processed and how many the batch claimed.

    :param when_full: called once the batch is claimed (and its contacts locked), if it is a full
        ``ENGINE_EVENT_BATCH``: more may wait, and another worker can claim them while this one works.
    """
    session = get_session()
    claimed: list[int] = []
    done, messages = _whole_else_one_by_one(
        session,
        "events",
        lambda: _process_events(session, event_ids, claimed, isolate=False, now=now, when_full=when_full),
        lambda: _process_events(session, claimed or event_ids, [], isolate=True, now=now),
        lambda: len(claimed),
    )
    _send_later(messages, now)
    # a bounded batch of each source per ROLLUP_EVENTS events claimed: the counters keep pace with the events
    roll_up_stats(session, limit=max(1, -(-len(claimed) // ROLLUP_EVENTS)), skip_busy=True)
    return done, len(claimed)


def _whole_else_one_by_one(
    session: Any,
    what: str,
    whole: Callable[[], tuple[int, list[int]]],
    one_by_one: Callable[[], tuple[int, list[int]]],
    size: Callable[[], int],
) -> tuple[int, list[int]]:
    """Run a batch *whole*; if it fails, roll back and run it once more whole when the database failed it (on a
    new connection; if that fails too the job fails), else *one_by_one*, so one broken item holds back no other."""
    try:
        return whole()
    except Exception as exc:
        session.rollback()
        if _database_failed(exc, what):
            return whole()
        log.warning("an item in a batch of %d %s failed; redoing the batch one by one", size(), what)
        return one_by_one()


def _database_failed(exc: Exception, what: str) -> bool:
    """Whether a batch failed because of the database (a connection dropped by a failover or a restart, the disk
    full), not because of a journey: then the batch is tried once more as a whole on a new connection (the pool
    checks it first), and if that fails too the job fails, with nothing written, and the scheduler hands the work
    out again (``REQUEUE_AFTER``). Redone one by one instead, each item would fail and be counted against its
    journey, or (a wake-up job, which names no events) nothing would be claimed and the job would end as done.
    """
    trouble = database_trouble(exc)
    if trouble is None:
        return False
    log.warning("the database failed a batch of %s (%s); trying it once more", what, trouble)
    return True


def _claim(ctx: EngineContext, event_ids: list[int], batch: int) -> list[int]:
    """Mark *event_ids*, then other pending events (oldest first) up to *batch* in all, processed; return the ids
    claimed, in order.

    A duplicate job (or a second worker) finds nothing left to claim; a failed event waits out its back-off, and
    a parked one waits for an operator. On PostgreSQL the rows another worker is claiming are skipped, not waited
    for: they are its own."""
    table = Event.__table__
    at = ctx.moment
    pending = (
        table.c.processed_at.is_(None),
        table.c.parked_at.is_(None),
        or_(table.c.retry_at.is_(None), table.c.retry_at <= at),
    )
    postgres = ctx.session.get_bind().dialect.name == "postgresql"
    # the given events are found by id: SQLite's planner, told nothing, would rather read every pending event through
    # the unprocessed-events index (~8 ms a claim of 1,000 with 50,000 pending, ~0.8 by id); likely() steers it
    given = pending if postgres else (func.likely(pending[0]), *pending[1:])

    def take(query: Any, where: tuple[Any, ...] = pending) -> list[int]:
        chosen = query.cte("chosen")
        if postgres:  # selected once (an IN subquery may be run again, and pick other rows past the LIMIT)
            chosen = query.with_for_update(skip_locked=True).cte("chosen").prefix_with("MATERIALIZED")
        claim = update(table).where(table.c.id == chosen.c.id, *where).values(processed_at=at)
        return list(ctx.session.connection().execute(claim.returning(table.c.id)).scalars().all())  # one fetchall

    claimed = take(select(table.c.id).where(bulk.among(ctx, table.c.id, event_ids), *given), given) if event_ids else []
    if len(claimed) < batch:
        oldest = select(table.c.id).where(*pending).order_by(table.c.processed_at, table.c.received_at)
        claimed += take(oldest.limit(batch - len(claimed)))
    return sorted(claimed)


def _process_events(
    session,
    event_ids: list[int],
    claimed: list[int],
    isolate: bool,
    now: int | None,
    when_full: Callable[[], Any] | None = None,
) -> tuple[int, list[int]]:
    ctx = _ctx(session, now)
    table = Event.__table__
    batch = 0 if isolate else ctx.config.get("ENGINE_EVENT_BATCH", 1)
    claimed[:] = _claim(ctx, event_ids, batch)
    if not claimed:
        session.rollback()
        return 0, []
    if session.get_bind().dialect.name == "postgresql":
        # serialise work on these contacts across workers (after the claim, which never waits); a fixed order
        # cannot deadlock
        contacts = select(table.c.contact_id).where(bulk.among(ctx, table.c.id, claimed))
        session.execute(select(Contact.id).where(Contact.id.in_(contacts)).order_by(Contact.id).with_for_update())
    if when_full is not None and len(claimed) >= max(batch, 1):
        when_full()
    done, rest = 0, claimed
    if not isolate and ctx.config.get("ENGINE_SET_WISE_EVENTS", True):
        # the simple events set-wise, in a few statements; the interpreter takes the others
        rows = setwise.read_events(session, bulk.among(ctx, table.c.id, claimed))
        attribution.attribute_rows(session, ctx.config, rows)  # the values they carry, credited as they arrive
        rest = setwise.process(ctx, rows)
        done = len(rows) - len(rest)
        session.flush()
    else:
        attribution.attribute(session, ctx.config, claimed)
    events = session.scalars(select(Event).where(Event.id.in_(rest)).order_by(Event.id)).all() if rest else []
    # preloaded; an earlier set-based step may have changed them in SQL
    session.scalars(
        select(Contact).where(Contact.id.in_({e.contact_id for e in events})).execution_options(populate_existing=True)
    ).all()
    for event in events:
        if not isolate:
            dispatch.handle_event(ctx, event)
            dispatch.drain(ctx)
            done += 1
            continue
        event_id, mark = event.id, ctx.checkpoint()
        try:
            with session.begin_nested():
                dispatch.handle_event(ctx, event)
                dispatch.drain(ctx)
                ctx.write_buffered()
            done += 1
        except Exception as exc:  # not done: unclaimed again, with its error and a back-off
            ctx.forget_since(mark)
            failures.event_failed(session, ctx.config, event_id, exc, ctx.now)
    ctx.commit()
    return done, ctx.new_messages


def advance_enrolments(enrolment_ids: list[int], lease: int, now: int | None = None) -> int:
    """Resume a leased batch of due enrolments in one transaction.

    Fast path: the whole batch in one go. If any journey fails, the batch is rolled back and
    redone one enrolment per savepoint, so one broken journey never holds back the others; the
    failed one stays at its step, retried after a back-off (parked after ``MAX_ATTEMPTS`` tries).
    """
    session = get_session()
    ran, messages = _whole_else_one_by_one(
        session,
        "journeys",
        lambda: _advance(session, enrolment_ids, lease, isolate=False, now=now),
        lambda: _advance(session, enrolment_ids, lease, isolate=True, now=now),
        lambda: len(enrolment_ids),
    )
    _send_later(messages, now)
    roll_up_stats(session, limit=1, skip_busy=True)
    return ran


def _advance(session, enrolment_ids: list[int], lease: int, isolate: bool, now: int | None) -> tuple[int, list[int]]:
    ctx = _ctx(session, now)
    table = Enrolment.__table__
    query = select(table.c.id, table.c.version_id, table.c.pc, table.c.wait_event, table.c.rule_id).where(
        bulk.among(ctx, table.c.id, enrolment_ids), table.c.due == lease, table.c.state == EnrolmentState.ACTIVE.value
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.connection().execute(query).all()
    ran = 0
    if not isolate:
        rows, ran = _advance_set_based(ctx, rows)
    enrolments = (
        session.scalars(select(Enrolment).where(Enrolment.id.in_([r.id for r in rows])).order_by(Enrolment.id)).all()
        if rows
        else []
    )
    contacts = (
        {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_({e.contact_id for e in enrolments})))}
        if enrolments
        else {}
    )
    for enr in enrolments:
        if not isolate:
            # no autoflush: the batch's updates and inserts go to the database together at commit
            # (the engine flushes explicitly wherever it reads back what it wrote)
            with session.no_autoflush:
                runtime.resume_due(ctx, enr, contacts.get(enr.contact_id))
            ran += 1
            continue
        enrolment_id, mark = enr.id, ctx.checkpoint()
        try:
            with session.begin_nested():
                runtime.resume_due(ctx, enr, contacts.get(enr.contact_id))
                dispatch.drain(ctx)
                ctx.write_buffered()  # inside the savepoint: a failed journey leaves no trace rows behind
            ran += 1
        except Exception as exc:  # stays at its step, due again after a back-off
            ctx.forget_since(mark)
            failures.enrolment_failed(session, ctx.config, enrolment_id, exc, ctx.now)
    dispatch.drain(ctx)
    ctx.commit()
    return ran, ctx.new_messages


def _advance_set_based(ctx: EngineContext, rows: list) -> tuple[list, int]:
    """Advance groups at the same simple step together (see :mod:`server.engine.bulk`); return the rest."""
    from collections import defaultdict

    from ..models import Rule

    groups: dict[tuple[int, int], list] = defaultdict(list)
    rest: list[Any] = []
    for row in rows:  # (id, version_id, pc, wait_event, rule_id), unpacked: a row's attributes cost more
        _id, version_id, pc, wait_event, _rule = row
        (rest if wait_event is not None else groups[(version_id, pc)]).append(row)
    ran = 0
    for (version_id, pc), members in groups.items():
        plan = ctx.plan(version_id)
        ops = runtime.segment(plan, pc, ctx) if len(members) > 1 else None
        if ops is None:
            rest.extend(members)
            continue
        rule = ctx.session.get_one(Rule, members[0].rule_id)
        ctx.new_messages.extend(
            runtime.advance_group(ctx, version_id, pc, [m[0] for m in members], ops, rule.id, rule.name)
        )
        ran += len(members)
    return rest, ran


def fire_timers(now: int | None = None) -> int:
    """Fire due date and schedule triggers."""
    session = get_session()
    ctx = _ctx(session, now)
    fired = dispatch.fire_trigger_timers(ctx) + dispatch.fire_schedule_timers(ctx)
    ctx.commit()
    _send_later(ctx.new_messages, now)
    roll_up_stats(session, limit=1, skip_busy=True)
    return fired


def deliver_messages(message_ids: list[int], now: int | None = None) -> int:
    """Send a batch of outbox rows, and other due ones up to ``JOB_MORE``; see :mod:`server.engine.outbox`."""
    session = get_session()
    sent = deliver(session, current_app, message_ids, now=now, more=JOB_MORE)
    roll_up_stats(session, limit=1, skip_busy=True)
    return sent


# -- the scheduler tick ----------------------------------------------------------------------------
def lease_due(session, now: int, limit: int, lease: int = LEASE) -> list[int]:
    """Claim up to *limit* due enrolments for one batch by moving their due time *lease* seconds ahead."""
    query = (
        select(Enrolment.id)
        .where(Enrolment.state == EnrolmentState.ACTIVE, Enrolment.due <= now)
        .order_by(Enrolment.due)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    conn = session.connection()  # plain rows, and the ids as one bound value (bulk.ids_in), not a thousand
    ids = list(conn.execute(query).scalars().all())
    if ids:
        conn.execute(update(Enrolment).where(bulk.ids_in(session, Enrolment.id, ids)).values(due=now + lease))
    return ids


def requeue_due(max_batches: int = 20, now: int | None = None) -> dict[str, Any]:
    """One scheduler tick: move due work from the database onto the queue.

    While Redis cannot be reached nothing is leased (a lease would only make its work wait); a batch
    whose enqueue fails gives its lease back at once. The first tick after an outage (or after Redis
    lost its data: flushed, or restarted without it, between two ticks) re-enqueues
    every unprocessed event and unsent message without waiting ``REQUEUE_AFTER``, and the jobs of the
    batches this scheduler leased whose leases have not run out: their jobs may have been lost.
    :param now: run the tick, and the jobs it enqueues, on this engine clock (UNIX seconds); default the app's
        clock (``server.clock``).
    :return: counts of what was enqueued or resolved.
    """
    session = get_session()
    config = current_app.config
    clock: dict[str, Any] = {} if now is None else {"now": now}  # an explicit clock travels with the jobs
    now = to_ts(utcnow()) if now is None else now
    instant = utcnow() if not clock else to_dt(now)
    queue = get_queue()
    stale = instant - timedelta(seconds=config["REQUEUE_AFTER"])
    lease = max(1, math.ceil(config["ENGINE_LEASE"]))  # due times are whole seconds
    counts: dict[str, Any] = {"events": 0, "enrolments": 0, "timers": 0, "messages": 0}
    counts["stats"] = roll_up_stats(session)  # first, on a clean session: it commits as it goes
    # a send whose worker vanished: back to pending if it never reached the channel, else held or resent
    idempotent = tuple(
        name
        for name, cls in current_app.extensions["nudge.plugins"].channels.items()
        if getattr(cls, "idempotent", False)
    )
    counts.update(resolve_stale_sends(session, config, stale, instant, idempotent))
    if not queue.reachable():
        session.commit()
        return counts
    leases = _Leases.of(current_app, now)
    if queue.recovered():
        stale = instant  # whatever was queued before or during the outage may be gone
        log.warning("re-enqueuing every unprocessed event, unsent message and leased batch now (Redis lost them)")
        # a batch leased before the outage may have lost its job with Redis: its job again (the lease lets one run);
        # kept in memory either way, so a job that cannot be enqueued now is enqueued after the next outage
        for ids, lease in list(leases.batches):
            if queue.enqueue(advance_enrolments, ids, lease, **clock):
                counts["enrolments"] += len(ids)
    # Backpressure: work is moved only while few jobs wait, so that a job starts well within its lease. A flooded
    # queue lets leases expire before their jobs start; the batches are leased again, and those jobs find nothing.
    waiting = queue.waiting()
    room = max(0, max_batches - waiting)

    events = (
        []
        if waiting and stale < instant
        else list(
            session.scalars(  # a waiting job may hold them
                select(Event.id)
                .where(
                    Event.processed_at.is_(None),
                    Event.parked_at.is_(None),
                    or_(Event.retry_at.is_(None) & (Event.received_at <= stale), Event.retry_at <= instant),
                )
                .limit(1000)
            )
        )
    )
    batches: list[tuple[list[int], int]] = []
    for _ in range(room):
        ids = lease_due(session, now, BATCH, lease)
        if not ids:
            break
        batches.append((ids, now + lease))
    timers_due = room and (
        session.scalar(select(TriggerTimer.id).where(TriggerTimer.due <= now).limit(1))
        or session.scalar(select(ScheduleTimer.id).where(ScheduleTimer.due <= now).limit(1))
    )
    due_messages = (
        []
        if queue.waiting(send=True) >= max_batches
        else list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.status == MessageStatus.PENDING.value,
                    Message.next_attempt_at <= instant,
                    (Message.claimed_at.is_(None)) | (Message.claimed_at <= stale),
                )
                .limit(1000)
            )
        )
    )
    if due_messages:
        session.execute(update(Message).where(Message.id.in_(due_messages)).values(claimed_at=instant))
    session.commit()  # leases are committed before their jobs exist: a lost job only delays, never doubles

    # in small jobs: spread over the workers, and each one short enough to finish between crashes
    for start in range(0, len(events), RECOVERY_BATCH):
        if not queue.enqueue(process_events, events[start : start + RECOVERY_BATCH], **clock):
            break
        counts["events"] += len(events[start : start + RECOVERY_BATCH])
    while batches and queue.enqueue(advance_enrolments, *batches[0], **clock):
        ids, lease = batches.pop(0)
        counts["enrolments"] += len(ids)
        leases.add(ids, lease)
    if timers_due and queue.enqueue(fire_timers, job_id=f"nudge-timers-{now}", **clock):
        counts["timers"] = 1
    if due_messages and queue.enqueue_send(deliver_messages, due_messages, **clock):
        counts["messages"] = len(due_messages)
        due_messages = []
    _release(session, now, batches, due_messages, instant)
    return counts


def roll_up_stats(session, limit: int = 4, skip_busy: bool = False) -> int:
    """Fold the new journey trace, send outcomes, message events and attributions into the stats counters (see
    :mod:`.rollup`): every scheduler tick, and after each worker job (*limit*: one bounded batch per source, or one
    per :data:`ROLLUP_EVENTS` events the job claimed, so stats are fresh without slowing the job down;
    *skip_busy*: a source another worker is folding is left to it).
    A failure is logged and retried next time, never the job's or the tick's end. :return: counters changed."""
    from .rollup import rollup

    try:
        return rollup(session, limit=limit, skip_busy=skip_busy)
    except Exception as exc:
        session.rollback()
        log_failure(log, "the stats rollup stopped until the next tick (it resumes from its watermark)", exc)
        return 0


class _Leases:
    """The batches this scheduler leased whose leases have not run out (at most :data:`REMEMBERED_LEASES` ids), kept
    in the app: after an outage their jobs are enqueued again. Memory only: the database still holds each lease."""

    def __init__(self) -> None:
        self.batches: deque[tuple[list[int], int]] = deque()
        self.size = 0

    @classmethod
    def of(cls, app: Any, now: int) -> _Leases:
        """The app's, without the leases run out by *now* (their batches are due again, and leased anew)."""
        leases: _Leases = app.extensions.setdefault("nudge.engine.leases", cls())
        while leases.batches and leases.batches[0][1] <= now:
            leases.size -= len(leases.batches.popleft()[0])
        return leases

    def add(self, ids: list[int], lease: int) -> None:
        self.batches.append((ids, lease))
        self.size += len(ids)
        while self.size > REMEMBERED_LEASES:
            self.size -= len(self.batches.popleft()[0])


def _release(session, now: int, batches: list[tuple[list[int], int]], messages: list[int], marked: Any) -> None:
    """Give back at once what was leased for jobs that could not be enqueued (Redis went away meanwhile)."""
    if not batches and not messages:
        return
    for ids, lease in batches:  # due again now, not when the lease would have run out
        session.execute(
            update(Enrolment)
            .where(Enrolment.id.in_(ids), Enrolment.due == lease, Enrolment.state == EnrolmentState.ACTIVE)
            .values(due=now)
        )
    if messages:
        session.execute(
            update(Message)
            .where(
                Message.id.in_(messages), Message.claimed_at == marked, Message.status == MessageStatus.PENDING.value
            )
            .values(claimed_at=None)
        )
    session.commit()
    log.warning(
        "released %d leased enrolment(s) and %d message(s): their jobs could not be enqueued",
        sum(len(ids) for ids, _lease in batches),
        len(messages),
    )


__all__ = [
    "advance_enrolments",
    "deliver_messages",
    "fire_timers",
    "process_events",
    "requeue_due",
    "roll_up_stats",
]
