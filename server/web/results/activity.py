"""The dashboard's activity section: events, sends, failures, unsubscribes, complaints and revenue per day over a
chosen window, as line charts with the numbers as a table, and the rules that sent most."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from ...engine.activity import events_per_day, rule_totals, top_senders
from ...engine.funnel import overview
from .view import activity_charts, activity_days
from .window import DAY, WINDOWS, read_window

#: the most days drawn one by one (a longer window shows its last days)
MAX_DAYS = 366


def dashboard_activity(session: Session, args: Mapping[str, str], now: int) -> dict[str, Any]:
    """The template context of ``admin/results/_activity.html`` for the query string *args* at UNIX time *now*."""
    window = read_window(args, now)
    context: dict[str, Any] = {"window": window, "windows": WINDOWS, "activity": [], "charts": [], "top": []}
    if window.errors:
        return context
    sends = overview(session, since=window.since, until=window.until)
    events = events_per_day(session, since=window.since, until=window.until)
    today = now // DAY
    if window.since is None:  # all time: from the first day with anything
        seen = [row["day"] for row in sends["days"]] + list(events)
        first = min(seen) if seen else None
        from datetime import date

        start = (date.fromisoformat(first).toordinal() - date(1970, 1, 1).toordinal()) if first else today - 29
        days = list(range(max(start, today - MAX_DAYS + 1), today + 1))
    else:
        days = window.days(today)[-MAX_DAYS:]
    rows = activity_days(days, sends, events)
    context.update(
        activity=rows,
        totals={**sends["totals"], "events": sum(events.values())},
        charts=activity_charts(rows),
        top=top_senders(rule_totals(session, since=window.since, until=window.until)),
    )
    return context


__all__ = ["dashboard_activity"]
