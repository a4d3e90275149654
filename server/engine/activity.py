"""The instance's activity for the dashboard and the results list: events per UTC day, and each rule's totals.

Sends, failures, unsubscribes and complaints per day come from :func:`server.engine.funnel.overview`; this adds
what it does not count: events received, and per rule the contacts entered, messages sent and goals reached in a
window (read from the rollup's counters, a few rows a rule and day).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Event, Rule, StatCounter

DAY = 86400
#: the counters summed per rule, and the name each has in :func:`rule_totals`
RULE_METRICS = {"entered": "entered", "sent": "sent", "exit:goal": "goal"}


def _instant(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def events_per_day(session: Session, *, since: int | None = None, until: int | None = None) -> dict[str, int]:
    """Events received per UTC day (``2026-11-01`` → count) between UNIX seconds *since* and *until* (whole days)."""
    day = func.date(Event.received_at)
    query = select(day, func.count()).group_by(day)
    if since is not None:
        query = query.where(Event.received_at >= _instant(since // DAY * DAY))
    if until is not None:
        query = query.where(Event.received_at < _instant((until // DAY + 1) * DAY))
    out: dict[str, int] = {}
    for value, n in session.execute(query):
        key = value.isoformat() if isinstance(value, date) else str(value)[:10]
        out[key] = out.get(key, 0) + int(n)
    return out


def rule_totals(session: Session, *, since: int | None = None, until: int | None = None) -> dict[int, dict[str, Any]]:
    """Per rule id: its name, and the contacts entered, messages sent and goals reached in the window."""
    query = (
        select(StatCounter.rule_id, StatCounter.metric, func.sum(StatCounter.count))
        .where(StatCounter.metric.in_(tuple(RULE_METRICS)))
        .group_by(StatCounter.rule_id, StatCounter.metric)
    )
    if since is not None:
        query = query.where(StatCounter.day >= since // DAY)
    if until is not None:
        query = query.where(StatCounter.day <= until // DAY)
    out: dict[int, dict[str, Any]] = {}
    for rule_id, name, status in session.execute(select(Rule.id, Rule.name, Rule.status).order_by(Rule.name)):
        out[rule_id] = {"id": rule_id, "name": name, "status": status, **dict.fromkeys(RULE_METRICS.values(), 0)}
    for rule_id, metric, total in session.execute(query):
        if rule_id in out:
            out[rule_id][RULE_METRICS[metric]] += int(total or 0)
    return out


def top_senders(totals: dict[int, dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """The rules that sent most in *totals* (:func:`rule_totals`), most first; rules that sent nothing left out."""
    ranked = sorted((row for row in totals.values() if row["sent"]), key=lambda row: (-row["sent"], row["name"]))
    return ranked[:limit]


__all__ = ["events_per_day", "rule_totals", "top_senders"]
