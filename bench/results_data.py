"""Data and pages of the Results area for bench/bench_admin_pages.py: the rollup's counters of every rule over 90
days (per step, split arm and metric, as a busy instance has them), then each results page and the dashboard's
activity over its longest window."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

DAYS = 90
#: what the rollup counts each day a step is busy: per kind of step (others: reached and passed)
METRICS = {
    "send": ("sent", "delivered", "opened:human", "opened:machine", "clicked:human", "clickers", "unsubscribed"),
    "wait": ("reached", "passed", "waited", "left", "exit:goal"),
}


def fill(app, rule_ids: list[int], now: int) -> None:
    """Counters for every step of each rule's newest version, every day of the last :data:`DAYS`: the metrics
    the rollup writes for such a step (:data:`METRICS`), in two split arms for the first rule, none for the rest."""
    from server.db import get_session
    from server.models import RuleVersion, StatCounter

    today = now // 86400
    with app.app_context():
        session = get_session()
        rows: list[dict[str, Any]] = []
        for rule_id in rule_ids:
            version = session.scalars(
                select(RuleVersion).where(RuleVersion.rule_id == rule_id).order_by(RuleVersion.number.desc())
            ).first()
            if version is None:
                continue
            steps = version.plan.get("steps", [])
            for day in range(today - DAYS + 1, today + 1):
                base = {"rule_id": rule_id, "version_id": version.id, "day": day}
                rows.append({**base, "step": "", "arm": "", "metric": "entered", "count": 40 + day % 7})
                rows.append({**base, "step": "end", "arm": "", "metric": "exit:completed", "count": 30 + day % 5})
                for op in steps:
                    metrics = METRICS.get(op.get("op"), ("reached", "passed"))
                    for arm in ("A", "B") if rule_id == rule_ids[0] else ("",):
                        rows.extend(
                            {**base, "step": op["id"], "arm": arm, "metric": m, "count": 5 + (day + len(m)) % 11}
                            for m in metrics
                        )
            if len(rows) > 20_000:
                session.execute(insert(StatCounter.__table__), rows)
                rows = []
        if rows:
            session.execute(insert(StatCounter.__table__), rows)
        session.commit()


def pages(rule_id: int) -> list[tuple[str, Any]]:
    """The Results pages to time, for the busiest rule."""
    return [
        ("Results: every rule, 30 days", "/admin/results/"),
        ("Results: every rule, 90 days", "/admin/results/?window=90d"),
        ("Results: a rule's funnel, 30 days", f"/admin/results/rules/{rule_id}"),
        ("Results: a rule's funnel, all time", f"/admin/results/rules/{rule_id}?window=all"),
        ("Results: a rule's funnel, one version", f"/admin/results/rules/{rule_id}?window=90d&version=1"),
        ("Dashboard: activity over 90 days", "/admin/?window=90d"),
    ]
