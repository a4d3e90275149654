"""The stats rollup: folds what the engine appended since the last run into per-step counters (docs/stats.md).

Three append-only sources are read past a stored watermark (their rows' ids): the journey log (entries, waits,
splits, exits), the outbox's status history (sent, delivered, bounced, failed, suppressed, complained) and the
events that name a journey's or a broadcast's message (opens, clicks, unsubscribes; a broadcast's figures count
under rule 0 and the step ``broadcast:<id>``). The counts and the moved watermark are
committed in one transaction, and the watermark moves only if nobody moved it meanwhile: a crash, or two rollups
at once, never count a row twice. The scheduler runs it every tick, and workers after each job (one bounded
batch per source). A fourth source, the revenue attributions (:mod:`.attribution`), feeds ``conversions`` and
``revenue`` (ten-thousandths of the currency unit) per send step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..models import Attribution, Event, JourneyLog, Message, MessageStatusChange, StatCounter, StatWatermark
from .bulk import ids_in
from .keys import BROADCAST_RULE, MEASURED, broadcast_of, broadcast_step, enrolment_of
from .rollup_settled import below, settled_up_to
from .rollup_trace import BATCH, END, RULE, Key, _Journeys, journey_rows

#: outbox statuses counted per send step; others (pending, deferred, resent …) are the outbox's business
STATUSES = ("sent", "delivered", "bounced", "failed", "suppressed", "complained", "unknown")
#: event suffixes (``email.clicked``) counted per send step, apart for people and machines
EVENT_METRICS = {"opened": "opened", "clicked": "clicked", "unsubscribed": "unsubscribed"}

#: above every id (a 32-bit SQL integer): arms taken up to now
_MAX_ID = 2**31 - 1
#: day 0 of the counters
EPOCH = date(1970, 1, 1)


def _day_column(column: Any) -> Any:
    """SQL: the UTC day of a time column (stored naive UTC), as the database gives it (text on SQLite, a date on
    PostgreSQL): a batch's rows name a few days over and over, each turned into a counter's day once
    (:func:`_day`), not a datetime made per row."""
    return func.date(column).label("day")


@lru_cache(maxsize=1024)
def _day(day: date | str) -> int:
    """The day (since 1970) of what :func:`_day_column` reads."""
    return ((date.fromisoformat(day) if isinstance(day, str) else day) - EPOCH).days


def _send_step(key: str) -> tuple[int, str] | None:
    """(enrolment, step) of a journey's send, from its outbox key ``enr:<enrolment>:<step>``."""
    enr = enrolment_of(key)
    if enr is None:
        return None
    return enr, key.split(":", 2)[2]


def _message_counts(session: Session, items: Iterable[tuple[str, Any, str | None, int]]) -> Counter[Key]:
    """Counters of send steps for *items* (of status changes, events, attributions): each names its message (its
    key), its ``day`` as :func:`_day_column` reads it, its counter (None: not counted) and what it adds. A
    broadcast's messages count under rule 0 and the step :func:`~.keys.broadcast_step` names."""
    counts: Counter[Key] = Counter()
    sends: dict[tuple[int, str, int, str], int] = {}  # (enrolment, step, day, metric): each looked up once
    for key, day, metric, weight in items:
        if metric is None:
            continue
        if (send := _send_step(key)) is not None:
            at = (*send, _day(day), metric)
            sends[at] = sends.get(at, 0) + weight
        elif (ident := broadcast_of(key)) is not None:  # counted under rule 0, step ``broadcast:<id>``
            counts[(BROADCAST_RULE, BROADCAST_RULE, broadcast_step(ident), "", _day(day), metric)] += weight
    if not sends:
        return counts
    journeys = _Journeys(session, {send[0] for send in sends}, _MAX_ID, trail=False)
    for (enr, step, day, metric), n in sends.items():
        rule_id = journeys.rule.get(enr)
        if rule_id is None:  # its journey was erased
            continue
        counts[(rule_id, journeys.version.get(enr, 0), step, journeys.arm_before(enr, step), day, metric)] += n
    return counts


def _status_rows(session: Session, after: int, upto: int | None = None) -> tuple[int, Counter[Key]]:
    rows = (
        session.connection()  # Core rows, one fetchall: not the ORM's loading, row by row
        .execute(
            select(
                MessageStatusChange.id,
                MessageStatusChange.status,
                MessageStatusChange.detail,
                _day_column(MessageStatusChange.at),
                Message.key,
            )
            .join(Message, Message.id == MessageStatusChange.message_id)
            .where(MessageStatusChange.id > after, *below(MessageStatusChange.id, upto))
            .order_by(MessageStatusChange.id)
            .limit(BATCH)
        )
        .all()
    )
    if not rows:
        return after, Counter()

    items = [(key, day, _status_metric(status, detail), 1) for _, status, detail, day, key in rows]
    return rows[-1].id, _message_counts(session, items)


@lru_cache(maxsize=1024)
def _status_metric(status: str, detail: str | None) -> str | None:
    """The counter of an outbox status (None: not counted); a suppression's names its reason, the first word of its
    detail. Worked out once per status and detail (a batch's rows repeat a few)."""
    if status not in STATUSES:
        return None
    if status == "suppressed":
        return f"suppressed:{(detail or 'unknown').split(':')[0].split(' ')[0][:40]}"
    return status


def _event_rows(session: Session, after: int, upto: int | None = None) -> tuple[int, Counter[Key]]:
    # the batch: BATCH ids from the first one past the watermark (at most BATCH events), found at the two ends of the
    # id index; the next BATCH events in id order, one window, were read by PostgreSQL through a scan of the whole
    # table and a sort when it had not analysed the table since a burst (most of a burst's rollups)
    lowest = select(func.min(Event.id)).where(Event.id > after, *below(Event.id, upto)).scalar_subquery()
    first_id, top = session.execute(select(lowest, select(func.max(Event.id)).scalar_subquery())).one()
    if first_id is None:
        return after, Counter()
    last = min(top, first_id + BATCH - 1, top if upto is None else upto)
    # only the events that may name a message are read (and their props decoded): a form submission or an order
    # is passed over by its name; SQL's LIKE only narrows (SQLite's ignores case), the exact test follows
    rows = (
        session.connection()
        .execute(
            select(Event.id, Event.contact_id, Event.name, Event.props, _day_column(Event.occurred_at))
            .where(
                Event.id > after,
                Event.id <= last,
                or_(*(Event.name.like(f"%.{suffix}") for suffix in EVENT_METRICS)),
            )
            .order_by(Event.id)
        )
        .all()
    )
    keyed = [
        row
        for row in rows
        if isinstance(row.props, dict)
        and isinstance(row.props.get("message"), str)
        and row.props["message"].startswith(MEASURED)
        and row.name.rpartition(".")[2] in EVENT_METRICS
    ]

    def metric(row: Any) -> str:
        what = EVENT_METRICS[row.name.rpartition(".")[2]]
        if what == "unsubscribed":
            return what
        return f"{what}:{'machine' if row.props.get('machine') else 'human'}"

    measured = [(row, metric(row)) for row in keyed]
    items = [(row.props["message"], row.day, what, 1) for row, what in measured]
    # a person's first click on a message also counts a clicker (the split comparison's outcome counts people)
    humans = [row for row, what in measured if what == "clicked:human"]
    items += [(row.props["message"], row.day, "clickers", 1) for row in _first_clicks(session, humans, after)]
    return last, _message_counts(session, items)


def _first_clicks(session: Session, clicks: list[Any], after: int) -> list[Any]:
    """Those of *clicks* (a batch's human clicks, in id order) that are a person's first click on their message:
    no human click before it (a lower id) by the same contact, of the same event name, on the same message.

    One query for the whole batch reads the older batches' clicks of its people (ids up to *after*, through the
    index on contact and name): a newsletter's batch holds thousands of clicks, and a query per click was thousands
    of queries. The batch's own earlier clicks are its rows before each one (every event of the batch with that
    name is among them), followed in id order: of two clicks on one message in the batch, only the first counts.
    """
    if not clicks:
        return []
    older = session.connection().execute(
        select(Event.contact_id, Event.name, Event.props).where(
            ids_in(session, Event.contact_id, sorted({row.contact_id for row in clicks})),
            Event.name.in_(sorted({row.name for row in clicks})),
            Event.id <= after,
        )
    )
    # (contact, name, message) of every human click so far; a machine's ("machine" set) never counts
    clicked = {
        (contact, name, props["message"])
        for contact, name, props in older
        if isinstance(props, dict) and isinstance(props.get("message"), str) and not props.get("machine")
    }
    firsts = []
    for row in clicks:
        click = (row.contact_id, row.name, row.props["message"])
        if click not in clicked:
            clicked.add(click)
            firsts.append(row)
    return firsts


#: the revenue counters, fed by the attributions
REVENUE_METRICS = ("conversions", "revenue")


def _attribution_rows(session: Session, after: int, upto: int | None = None) -> tuple[int, Counter[Key]]:
    rows = (
        session.connection()
        .execute(
            select(Attribution.id, Attribution.message_key, Attribution.amount, _day_column(Attribution.occurred_at))
            .where(Attribution.id > after, *below(Attribution.id, upto))
            .order_by(Attribution.id)
            .limit(BATCH)
        )
        .all()
    )
    if not rows:
        return after, Counter()

    items = [(key, day, "conversions", 1) for _, key, _, day in rows]
    items += [(key, day, "revenue", int(amount)) for _, key, amount, day in rows]
    # a counter whose sum is not above 0 (refunds) is left out, as adding two Counters does
    return rows[-1].id, +_message_counts(session, items)


#: each source: its watermark's name, the function reading its rows past a watermark (up to an id: those being
#: written may not be read past, :mod:`.rollup_settled`), and its table
SOURCES = (
    ("journey_log", journey_rows, JourneyLog.__table__),
    ("message_status", _status_rows, MessageStatusChange.__table__),
    ("events", _event_rows, Event.__table__),
    ("attributions", _attribution_rows, Attribution.__table__),
)


def rollup(session: Session, *, limit: int | None = 100, skip_busy: bool = False) -> int:
    """Fold every source's new rows into the counters, one committed batch per source at a time.

    :param limit: at most this many batches per source (a huge backlog is finished by the next runs); None:
        until every source is caught up (``nudge simulate``, tests, benchmarks).
    :param skip_busy: on PostgreSQL, pass over a source whose batch another rollup is folding now, instead of
        reading the same rows and then waiting for its commit to find them counted (workers after each job: the
        next job or tick folds what is left).
    :return: how many counters were changed (0 when nothing was new).
    """
    changed = 0
    for source, read, rows in SOURCES:
        done = 0
        while limit is None or done < limit:
            moved = _fold(session, source, read, rows, skip_busy)
            if moved is None:
                break
            changed += moved
            done += 1
    return changed


def counted_up_to(session: Session, source: str) -> int:
    """The id up to which *source*'s rows are counted (its watermark, read from the database; 0: none yet)."""
    table = StatWatermark.__table__
    return session.scalar(select(table.c.last_id).where(table.c.source == source)) or 0


def revenue_lock(session: Session) -> None:
    """Take the attributions' watermark row for this transaction (made if missing): a rollup of them waits."""
    table = StatWatermark.__table__
    if session.get(StatWatermark, "attributions") is None:
        session.execute(table.insert().values(source="attributions", last_id=0))
    session.execute(select(table.c.last_id).where(table.c.source == "attributions").with_for_update())
    # SQLite: any write takes the database's one write lock for the transaction
    session.execute(update(table).where(table.c.source == "attributions").values(last_id=table.c.last_id))


def rebuild_revenue(session: Session, floor: int = 0) -> None:
    """Replace the revenue counters by those of the attributions stored now (in the caller's transaction).

    :param floor: the highest attribution id there was before (the watermark ends past it: a rollup that read
        rows since deleted finds the watermark moved, and counts nothing).
    """
    session.execute(delete(StatCounter).where(StatCounter.metric.in_(REVENUE_METRICS)))
    after, counts = 0, Counter[Key]()
    while True:
        last, batch = _attribution_rows(session, after)
        if last == after:
            break
        counts += batch
        after = last
    _add(session, counts)
    table = StatWatermark.__table__
    session.execute(update(table).where(table.c.source == "attributions").values(last_id=max(after, floor)))


def _fold(session: Session, source: str, read: Any, rows: Any, skip_busy: bool = False) -> int | None:
    """One batch of *source*: the counts and the watermark in one transaction; None when there was nothing new
    (or, with *skip_busy*, when another rollup holds the source's watermark). Either way the transaction is ended:
    committed (with the moved watermark and the counts, or with nothing written), or rolled back on an error."""
    try:
        after: int | None = None
        if skip_busy and session.get_bind().dialect.name == "postgresql":
            table = StatWatermark.__table__
            held = select(table.c.last_id).where(table.c.source == source)
            locked = session.execute(held.with_for_update(skip_locked=True)).first()
            if locked is not None:
                after = locked.last_id
            elif session.scalar(held) is not None:
                session.rollback()
                return None  # there, and locked: another rollup is folding this source's next batch
        if after is None:
            after = counted_up_to(session, source)
        last, counts = read(session, after, settled_up_to(session, rows))
        if last == after or not _move(session, source, after, last):
            # nothing new, or another rollup took this batch and counts it: nothing was written (a lost insert of the
            # watermark is undone by its savepoint), and the transaction that read ends here (left open, it would
            # hold its snapshot, and on SQLite keep checkpoints from resetting the WAL, until the session's next
            # commit). A commit, as the path that counts ends: a rollback would also expire the caller's objects
            session.commit()
            return None
        _add(session, counts)
        session.commit()
        return len(counts)
    except BaseException:
        session.rollback()
        raise


def _move(session: Session, source: str, after: int, last: int) -> bool:
    """Move *source*'s watermark from *after* to *last*, only if it still is at *after*."""
    table = StatWatermark.__table__
    if after == 0 and session.get(StatWatermark, source) is None:
        from sqlalchemy.exc import IntegrityError

        try:
            with session.begin_nested():
                session.execute(table.insert().values(source=source, last_id=last))
            return True
        except IntegrityError:
            return False
    result = session.execute(
        update(table).where(table.c.source == source, table.c.last_id == after).values(last_id=last)
    )
    return bool(getattr(result, "rowcount", 0))


def _add(session: Session, counts: Counter[Key]) -> None:
    """Add *counts* to the counters (an upsert on SQLite and PostgreSQL)."""
    if not counts:
        return
    table = StatCounter.__table__
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    rows = [
        {"rule_id": k[0], "version_id": k[1], "step": k[2], "arm": k[3], "day": k[4], "metric": k[5], "count": n}
        for k, n in counts.items()
    ]
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["rule_id", "version_id", "step", "arm", "day", "metric"],
        set_={"count": table.c.count + stmt.excluded.count},
    )
    for start in range(0, len(rows), 500):
        session.execute(stmt, rows[start : start + 500])


__all__ = [
    "BATCH",
    "END",
    "REVENUE_METRICS",
    "RULE",
    "SOURCES",
    "counted_up_to",
    "rebuild_revenue",
    "revenue_lock",
    "rollup",
]
