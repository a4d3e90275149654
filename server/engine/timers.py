"""Date, inactivity and schedule triggers: each a row with a due time, fired by the scheduler."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select

from ..models import Contact, Event, ScheduleTimer, TriggerTimer
from .context import EngineContext
from .scope import contact_value
from .timeutil import DEFAULT_AT, local_at, next_anniversary, next_local_time, parse_hhmm, to_dt, to_ts, zone

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _field_name(trigger: dict[str, Any]) -> str:
    return str(trigger["field"]).removeprefix("contact.")


def next_fire(ctx: EngineContext, trigger: dict[str, Any], contact: Contact, after: int) -> int | None:
    """When a date-based *trigger* next fires for *contact*, at or after *after*; None if never."""
    tz = zone(contact.timezone, ctx.default_tz)
    kind = trigger["kind"]
    if kind == "anniversary":
        value = contact_value(contact, _field_name(trigger))
        if isinstance(value, datetime):
            value = value.astimezone(tz).date()
        if not isinstance(value, date):
            return None
        return next_anniversary(after, value.month, value.day, parse_hhmm(trigger.get("at") or DEFAULT_AT), tz)
    if kind == "relative_date":
        value = contact_value(contact, _field_name(trigger))
        offset = int(trigger["offset"])  # signed: negative for "before"
        if not isinstance(value, date):  # a datetime is a date too
            return None
        if offset % 86400:  # "2h before": an exact moment (from a date's local midnight); no "at" applies
            start = to_ts(value) if isinstance(value, datetime) else local_at(value, time(0), tz)
            ts = start + offset
        else:  # "1d before": a local day, at its "at" time (default 09:00)
            day = value.astimezone(tz).date() if isinstance(value, datetime) else value
            ts = local_at(day + timedelta(days=offset // 86400), parse_hhmm(trigger.get("at") or DEFAULT_AT), tz)
        return ts if ts >= after else None
    if kind == "inactivity":
        last = ctx.session.scalar(
            select(Event.occurred_at)
            .where(Event.contact_id == contact.id, Event.name == trigger["event"])
            .order_by(Event.occurred_at.desc())
            .limit(1)
        )
        start = max(to_ts(last) if last else 0, to_ts(contact.created_at))
        ts = start + int(trigger["seconds"])
        return ts if ts >= after else None
    return None


def _set_timer(ctx: EngineContext, rule_id: int, contact_id: int, due: int | None) -> None:
    row = ctx.session.scalar(
        select(TriggerTimer).where(TriggerTimer.rule_id == rule_id, TriggerTimer.contact_id == contact_id)
    )
    if due is None:
        if row is not None:
            ctx.session.delete(row)
    elif row is None:
        ctx.session.add(TriggerTimer(rule_id=rule_id, contact_id=contact_id, due=due))
    else:
        row.due = due


def plan_contact(
    ctx: EngineContext,
    contact: Contact,
    timed: Iterable[tuple[int, int, dict[str, Any]]],
    fields: set[str] | None = None,
) -> None:
    """(Re)plan every date trigger of *contact*; with *fields*, only triggers on those fields."""
    for rule_id, _version_id, trigger in timed:
        kind = trigger["kind"]
        if kind in ("anniversary", "relative_date"):
            if fields is not None and _field_name(trigger) not in fields and "timezone" not in fields:
                continue  # a move to another time zone moves every "at 09:00"
            _set_timer(ctx, rule_id, contact.id, next_fire(ctx, trigger, contact, ctx.now))
        elif kind == "inactivity" and fields is None:
            _set_timer(ctx, rule_id, contact.id, next_fire(ctx, trigger, contact, ctx.now))
        elif kind == "schedule":
            ensure_schedule_timer(ctx, rule_id, trigger, contact.timezone or ctx.default_tz)


def on_event(
    ctx: EngineContext, contact: Contact, event: Event, timed: Iterable[tuple[int, int, dict[str, Any]]]
) -> None:
    """An event re-arms the inactivity triggers that watch it."""
    for rule_id, _version_id, trigger in timed:
        if trigger["kind"] == "inactivity" and trigger["event"] == event.name:
            _set_timer(ctx, rule_id, contact.id, to_ts(event.occurred_at) + int(trigger["seconds"]))


# -- schedules ------------------------------------------------------------------------------
def next_schedule(ctx: EngineContext, trigger: dict[str, Any], tz_name: str, after: int) -> int:
    if trigger.get("interval"):
        # on the interval's own boundaries (every 1h: on the hour): firings neither drift nor depend on when
        # the timer was made
        interval = int(trigger["interval"])
        return -(-after // interval) * interval
    tz = zone(tz_name, ctx.default_tz)
    at = parse_hhmm(trigger.get("at") or DEFAULT_AT)
    ts = next_local_time(after, at, tz)
    day = trigger.get("day") or "day"
    if day in WEEKDAYS:
        for _ in range(8):
            if to_dt(ts).astimezone(tz).weekday() == WEEKDAYS.index(day):
                break
            ts = next_local_time(ts + 60, at, tz)
    return ts


def ensure_schedule_timer(ctx: EngineContext, rule_id: int, trigger: dict[str, Any], tz_name: str) -> None:
    exists = ctx.session.scalar(
        select(ScheduleTimer.id).where(ScheduleTimer.rule_id == rule_id, ScheduleTimer.timezone == tz_name)
    )
    if exists is None:
        ctx.session.add(
            ScheduleTimer(rule_id=rule_id, timezone=tz_name, due=next_schedule(ctx, trigger, tz_name, ctx.now))
        )
        ctx.session.flush()


def schedule_contact_ids(ctx: EngineContext, tz_name: str) -> Any:
    """A SELECT of the ids of contacts living in *tz_name* (no zone = the instance default)."""
    query = select(Contact.id)
    if tz_name == ctx.default_tz:
        return query.where((Contact.timezone == tz_name) | Contact.timezone.is_(None))
    return query.where(Contact.timezone == tz_name)


def schedule_contacts(ctx: EngineContext, tz_name: str) -> list[Contact]:
    ids = schedule_contact_ids(ctx, tz_name)
    return list(ctx.session.scalars(select(Contact).where(Contact.id.in_(ids)).order_by(Contact.id)))


def clear_rule_timers(ctx: EngineContext, rule_id: int) -> None:
    ctx.session.execute(delete(TriggerTimer).where(TriggerTimer.rule_id == rule_id))
    ctx.session.execute(delete(ScheduleTimer).where(ScheduleTimer.rule_id == rule_id))
