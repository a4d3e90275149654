"""How delivery is doing, for ``/healthz``: each channel's last error and last success, what waits and what is parked.

Workers note a channel's failed tries as they happen and its successes at most once a minute (and at
once after a failure), in one small row per channel; the report reads indexed counts only, so a load
balancer may ask every few seconds. No personal data: error texts have addresses and numbers blanked.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import ChannelHealth, Enrolment, EnrolmentState, Event, Message, MessageStatus
from ..sdk import redact

#: a success is noted again after this many seconds, so ``last_sent_at`` stays roughly current
NOTE_EVERY = 60
#: work waiting longer than this (an event nobody processed, a due send nobody picked up) degrades health
STALLED = 600
#: a channel is failing after this many failed tries in a row (no success between), the last one recent
FAILING_AFTER = 3
RECENT = 86400


def note_error(session: Session, channel: str, text: str, at: datetime) -> None:
    """Record a failed try of *channel*; committed with the caller's transaction."""
    values = {"last_error": redact(text)[:500], "last_error_at": at}
    _upsert(session, channel, {**values, "failures": 1}, {**values, "failures": ChannelHealth.failures + 1})


def note_sent(session: Session, channel: str, at: datetime) -> None:
    """Record that *channel* sent something, unless a recent success is already noted and nothing failed since."""
    row = session.execute(
        select(ChannelHealth.last_sent_at, ChannelHealth.failures).where(ChannelHealth.channel == channel)
    ).first()
    if (
        row is not None
        and not row.failures
        and row.last_sent_at is not None
        and row.last_sent_at > at - timedelta(seconds=NOTE_EVERY)
    ):
        return
    _upsert(session, channel, {"last_sent_at": at, "failures": 0}, {"last_sent_at": at, "failures": 0})


def _upsert(session: Session, channel: str, new: dict[str, Any], update: dict[str, Any]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(ChannelHealth).values(channel=channel, **new)
        session.execute(pg_stmt.on_conflict_do_update(index_elements=["channel"], set_=update))
        return
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    stmt = sqlite_insert(ChannelHealth).values(channel=channel, **new)
    session.execute(stmt.on_conflict_do_update(index_elements=["channel"], set_=update))


def _age(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else max(0, int((now - then).total_seconds()))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def channel_report(session: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """Per channel: ``ok`` (fewer than ``FAILING_AFTER`` failed tries in a row, or none lately), the failed tries
    since the last success, the last error and when, and the last success."""
    out = {}
    for row in session.scalars(select(ChannelHealth).order_by(ChannelHealth.channel)):
        failing = (
            row.failures >= FAILING_AFTER
            and row.last_error_at is not None
            and row.last_error_at > now - timedelta(seconds=RECENT)
        )
        out[row.channel] = {
            "ok": not failing,
            "failures": row.failures,
            "last_error": row.last_error,
            "last_error_at": _iso(row.last_error_at),
            "last_sent_at": _iso(row.last_sent_at),
        }
    return out


def delivery_report(session: Session, now: datetime) -> dict[str, Any]:
    """Sends: how long the oldest unsent one has waited, how overdue the most overdue one is, counts by state."""
    pending = Message.status.in_((MessageStatus.PENDING.value, MessageStatus.SENDING.value))
    oldest, count = session.execute(select(func.min(Message.created_at), func.count()).where(pending)).one()
    overdue = session.scalar(
        select(func.min(Message.next_attempt_at)).where(
            Message.status == MessageStatus.PENDING.value, Message.next_attempt_at <= now
        )
    )
    retrying = session.scalar(
        select(func.count()).where(Message.status == MessageStatus.PENDING.value, Message.attempts > 0)
    )
    unknown = session.scalar(select(func.count()).where(Message.status == MessageStatus.UNKNOWN.value))
    return {
        "pending": count,
        "oldest_pending_seconds": _age(now, oldest),
        "most_overdue_seconds": _age(now, overdue) or 0,
        "retrying": retrying,
        "unknown": unknown,
    }


def engine_report(session: Session, now: datetime) -> dict[str, Any]:
    """Events not processed yet (how many, the oldest's age), those retrying, and parked events and journeys."""
    unprocessed = Event.processed_at.is_(None)
    backlog, oldest = session.execute(
        select(func.count(), func.min(Event.received_at)).where(
            unprocessed, Event.parked_at.is_(None), Event.retry_at.is_(None)
        )
    ).one()
    retrying = session.scalar(
        select(func.count()).where(unprocessed, Event.parked_at.is_(None), Event.retry_at.is_not(None))
    )
    parked_events = session.scalar(select(func.count()).where(unprocessed, Event.parked_at.is_not(None)))
    failing = dict(
        session.execute(
            select(Enrolment.state, func.count()).where(Enrolment.error.is_not(None)).group_by(Enrolment.state)
        ).all()
    )
    return {
        "unprocessed_events": backlog,
        "oldest_unprocessed_seconds": _age(now, oldest) or 0,
        "retrying_events": retrying,
        "parked_events": parked_events,
        "retrying_journeys": failing.get(EnrolmentState.ACTIVE.value, 0),
        "parked_journeys": failing.get(EnrolmentState.PARKED.value, 0),
    }


def problems(channels: dict[str, dict[str, Any]], delivery: dict[str, Any], engine: dict[str, Any]) -> list[str]:
    """Why delivery is degraded, in words without personal data; empty when it is not."""
    out = [f"channel {name} is failing" for name, info in channels.items() if not info["ok"]]
    if delivery["most_overdue_seconds"] > STALLED:
        out.append(f"a due send has waited {delivery['most_overdue_seconds']}s: are workers running?")
    if engine["oldest_unprocessed_seconds"] > STALLED:
        out.append(f"an event has waited {engine['oldest_unprocessed_seconds']}s: are workers running?")
    parked = engine["parked_events"] + engine["parked_journeys"]
    if parked:
        out.append(f"{parked} parked event(s)/journey(s) need an operator: nudge messages")
    return out


__all__ = ["channel_report", "delivery_report", "engine_report", "note_error", "note_sent", "problems"]
