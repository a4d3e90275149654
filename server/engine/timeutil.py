"""Local-time arithmetic for the engine: quiet hours, ``at 09:00``, anniversaries. Times are UNIX seconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = UTC
#: the local time a date means when a rule names none: date triggers and ``wait until <date>``
DEFAULT_AT = "09:00"


@lru_cache(maxsize=512)
def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def to_ts(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def iso(ts: int) -> str:
    return to_dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_hhmm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def local_at(day: date, at: time, tz: ZoneInfo) -> int:
    """UNIX time of *day* at local time *at*; a time skipped by DST moves forward by the gap."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz)
    # round-trip through UTC normalises non-existent local times (spring forward)
    return to_ts(aware.astimezone(UTC))


def next_local_time(now: int, at: time, tz: ZoneInfo) -> int:
    """The first instant >= *now* that is *at* local time."""
    today = to_dt(now).astimezone(tz).date()
    for offset in range(3):
        candidate = local_at(today + timedelta(days=offset), at, tz)
        if candidate >= now:
            return candidate
    raise AssertionError("unreachable: a local time recurs within three days")


def quiet_until(now: int, start: time, end: time, tz: ZoneInfo) -> int | None:
    """If *now* falls inside the quiet window [start, end) local time, the instant it ends; else None."""
    local = to_dt(now).astimezone(tz)
    t = local.time().replace(tzinfo=None)
    # a window ending before it starts wraps midnight, e.g. 21:00-08:00
    inside = start <= t < end if start <= end else (t >= start or t < end)
    if not inside:
        return None
    return next_local_time(now, end, tz)


def anniversary_on(year: int, month: int, day: int) -> date:
    """The anniversary date in *year*; 29 February falls on 28 February in other years."""
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, 2, 28)


def next_anniversary(now: int, month: int, day: int, at: time, tz: ZoneInfo) -> int:
    local_year = to_dt(now).astimezone(tz).year
    for year in (local_year, local_year + 1, local_year + 2):
        ts = local_at(anniversary_on(year, month, day), at, tz)
        if ts >= now:
            return ts
    raise AssertionError("unreachable")


def parse_date_value(value: object) -> date | datetime | None:
    """A contact/event value as a date or aware datetime, when it is one or is shaped like one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            return None
    return None
