"""A rule's funnel read from the rollup's counters: per step, per split arm, per send, over a window of days.

One grouped query over the rule's counters (a few rows per step and day), whatever the number of journeys; see
docs/stats.md, "The funnel".
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..durations import span_seconds
from ..models import Rule, RuleVersion, SplitTest, StatCounter
from ..stats import ArmCounts, compare_arms
from .arms import MAX_SPLITS, ArmKeys
from .attribution import SCALE
from .keys import BROADCAST_RULE, broadcast_step
from .rollup import END, RULE

#: the send step's metrics, in the order the table shows them
SEND_METRICS = (
    "sent",
    "delivered",
    "bounced",
    "failed",
    "opened:human",
    "opened:machine",
    "clicked:human",
    "clicked:machine",
    "clickers",
    "unsubscribed",
    "complained",
)


class StatsError(ValueError):
    """A stats request that cannot be answered (unknown rule or version, a bad window)."""


def rule_funnel(
    session: Session, name: str, *, since: int | None = None, until: int | None = None, version: int | None = None
) -> dict[str, Any]:
    """The funnel of rule *name*: activity between UNIX seconds *since* and *until* (whole UTC days, both
    included; None: unbounded), in version number *version* (None: every version); "waiting" is now.

    :raises StatsError: no such rule or version, or *since* after *until*.
    """
    rule = session.scalar(select(Rule).where(Rule.name == name))
    if rule is None:
        raise StatsError(f"no rule named {name!r}: `nudge rules` lists them")
    versions = list(
        session.execute(
            select(RuleVersion.id, RuleVersion.number, RuleVersion.plan)
            .where(RuleVersion.rule_id == rule.id)
            .order_by(RuleVersion.number)
        )
    )
    if version is not None:
        versions = [v for v in versions if v.number == version]
        if not versions:
            raise StatsError(f"rule {name!r} has no version {version}")
    if since is not None and until is not None and since > until:
        raise StatsError("the window starts after it ends: --since must be before --until")
    ids = [v.id for v in versions]
    columns = (StatCounter.version_id, StatCounter.step, StatCounter.arm, StatCounter.metric)
    query = select(*columns, func.sum(StatCounter.count)).where(StatCounter.rule_id == rule.id).group_by(*columns)
    if version is not None:
        query = query.where(StatCounter.version_id.in_(ids))
    gauge = query.where(StatCounter.metric.in_(("waited", "left")))
    if since is not None:
        query = query.where(StatCounter.day >= since // 86400)
    if until is not None:
        query = query.where(StatCounter.day <= until // 86400)
    plan = versions[-1].plan if versions else {"steps": []}
    # each version's keys read by its own plan (a counter of no version known: by the plan shown)
    keys = {v.id: ArmKeys(v.plan) for v in versions}
    shown = ArmKeys(plan)
    # per step, by the arm of the latest split taken; per split, by the arm taken there (docs/stats.md)
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    taken: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for version_id, step, arms, metric, total in session.execute(query):
        arm, at_splits = keys.get(version_id, shown).read(arms, step)
        counts[step][arm][metric] += int(total or 0)
        for split, name in at_splits.items():
            if metric != "reached":
                taken[split][name][metric] += int(total or 0)
            elif step == split:  # the journeys that took the arm at the split: its sample
                taken[split][name]["exposed"] += int(total or 0)
    waiting: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for version_id, step, arms, metric, total in session.execute(gauge):
        arm = keys.get(version_id, shown).read(arms, step)[0]
        waiting[step][arm] += int(total or 0) * (1 if metric == "waited" else -1)
    funnel = _shape(rule, versions, plan, counts, waiting, since, until, _splits(plan, taken, shown))
    states = auto_states(session, rule.id)
    for split in funnel["splits"]:
        if "auto" in split:
            split["auto"] = states.get(split["step"], split["auto"])
    return funnel


def _figures(metrics: dict[str, int], waiting: int) -> dict[str, Any]:
    exits = {m.split(":", 1)[1]: n for m, n in metrics.items() if m.startswith("exit:")}
    suppressed = {m.split(":", 1)[1]: n for m, n in metrics.items() if m.startswith("suppressed:")}
    out: dict[str, Any] = {
        "reached": metrics.get("reached", 0),
        "waiting": waiting,
        "passed": metrics.get("passed", 0),
        "goal": exits.get("goal", 0),
        "completed": exits.get("completed", 0),
        "stopped": exits.get("stopped", 0),
        "exits": exits,
        "suppressed": suppressed,
    }
    return {**out, **_send_figures(metrics)}


def _send_figures(metrics: dict[str, int]) -> dict[str, Any]:
    """A send's figures from its counters: each of :data:`SEND_METRICS`, conversions and revenue."""
    out: dict[str, Any] = {metric.replace(":", "_"): metrics.get(metric, 0) for metric in SEND_METRICS}
    out["conversions"] = metrics.get("conversions", 0)
    out["revenue"] = major(metrics.get("revenue", 0))
    return out


def broadcast_results(session: Session, ident: str) -> dict[str, Any]:
    """What broadcast *ident*'s messages did, from the stats' counters (as of the last rollup): the send step's
    figures (``sent``, ``delivered``, ``opened_human``, ``clicked_human``, ``clickers``, ``unsubscribed``,
    ``bounced``, ``complained`` …) and the ``conversions`` and ``revenue`` attributed to them.

    :raises StatsError: no broadcast has that id (none of its messages is in the outbox).
    """
    from .broadcast import broadcast_exists

    if not broadcast_exists(session, ident):
        raise StatsError(f"no broadcast {ident!r}: its id is the part after broadcast: in its messages' keys")
    metrics = {
        metric: int(total or 0)
        for metric, total in session.execute(
            select(StatCounter.metric, func.sum(StatCounter.count))
            .where(
                StatCounter.rule_id == BROADCAST_RULE,
                StatCounter.version_id == BROADCAST_RULE,
                StatCounter.step == broadcast_step(ident),
            )
            .group_by(StatCounter.metric)
        )
    }
    return _send_figures(metrics)


def major(amount: int) -> float:
    """An amount in ten-thousandths of the currency unit (the counters' ``revenue``) in the unit: 499000 → 49.9."""
    return float(Decimal(int(amount)) / SCALE)


def _shape(
    rule: Rule,
    versions: list[Any],
    plan: dict[str, Any],
    counts: dict[str, dict[str, dict[str, int]]],
    waiting: dict[str, dict[str, int]],
    since: int | None,
    until: int | None,
    splits: list[dict[str, Any]],
) -> dict[str, Any]:
    steps = []
    known = [str(op.get("id", i)) for i, op in enumerate(plan.get("steps", []))]
    ops = {str(op.get("id", i)): op for i, op in enumerate(plan.get("steps", []))}
    extra = [s for s in counts if s not in known and s not in (RULE, END)]
    for step in [*known, *sorted(extra), END]:
        by_arm = counts.get(step, {})
        if step == END and not by_arm:
            continue
        op = ops.get(step, {})
        merged: dict[str, int] = defaultdict(int)
        for metrics in by_arm.values():
            for metric, n in metrics.items():
                merged[metric] += n
        row = {"step": step, "op": op.get("op", "end" if step == END else "?"), "line": op.get("line")}
        if op.get("op") == "send":
            row["template"] = op.get("name")
            row["channel"] = op.get("channel")
        row.update(_figures(merged, sum(waiting.get(step, {}).values())))
        arms = {arm: _figures(m, waiting.get(step, {}).get(arm, 0)) for arm, m in by_arm.items() if arm}
        if arms:
            row["arms"] = arms
        steps.append(row)
    everything: dict[str, int] = defaultdict(int)
    for by_arm in counts.values():
        for metrics in by_arm.values():
            for metric, n in metrics.items():
                everything[metric] += n
    entered = everything.get("entered", 0)
    goal = everything.get("exit:goal", 0)
    return {
        "rule": rule.name,
        "versions": [v.number for v in versions],
        "window": {"since": since, "until": until},
        "entered": entered,
        "waiting": sum(sum(arms.values()) for arms in waiting.values()),
        "completed": everything.get("exit:completed", 0),
        "goal": goal,
        "stopped": everything.get("exit:stopped", 0),
        "exits": {m.split(":", 1)[1]: n for m, n in everything.items() if m.startswith("exit:")},
        "conversion": (goal / entered) if entered and plan.get("goal") else None,
        "conversions": everything.get("conversions", 0),
        "revenue": major(everything.get("revenue", 0)),
        "goal_event": (plan.get("goal") or {}).get("event"),
        "steps": steps,
        "splits": splits,
    }


def _splits(plan: dict[str, Any], taken: dict[str, dict[str, dict[str, int]]], keys: ArmKeys) -> list[dict[str, Any]]:
    """Each split's arms compared (server.stats): on the goal when the rule has one, else on clicking a send; an
    auto-winner split also has its test (``auto``: winner, when and by whom, the evidence; docs/optimisation.md).

    :param taken: per split step and arm name, the counters of the journeys that took that arm there, summed over
        the steps (``exposed``: their ``reached`` at the split), whatever they took at other splits.
    """
    out = []
    for op in plan.get("steps", []):
        if op.get("op") != "split":
            continue
        names = [arm["name"] for arm in op["arms"]]
        if plan.get("goal"):
            outcome, won = f"goal: {plan['goal']['event']}", "exit:goal"
        else:
            outcome, won = "clicked a message (people, not machines)", "clickers"
        arms = []
        for name in names:
            figures = taken.get(op["id"], {}).get(name, {})
            exposed = figures.get("exposed", 0)
            arms.append(
                ArmCounts(
                    name,
                    exposed,
                    min(figures.get(won, 0), exposed),
                    figures.get("conversions", 0),
                    major(figures.get("revenue", 0)),
                )
            )
        try:
            comparison: Any = compare_arms(arms, outcome_name=outcome).to_dict()
        except ValueError as exc:
            comparison = {"error": str(exc)}
        if not keys.kept(op["id"]):
            comparison = {
                "error": f"this split comes after the rule's first {MAX_SPLITS}: the stats keep the arms of those "
                "only, so its arms are not compared (split the rule in two to compare them)"
            }
        out.append(
            {
                "step": op["id"],
                "outcome": outcome,
                "arms": [
                    {"name": n, "exposed": e, "converted": c, "conversions": k, "revenue": r} for n, e, c, k, r in arms
                ],
                "comparison": comparison,
            }
        )
        if op.get("auto"):
            out[-1]["auto"] = {"winner": None, "declared_at": None, "declared_by": None, "evidence": None}
    return out


def auto_states(session: Session, rule_id: int) -> dict[str, dict[str, Any]]:
    """The rule's auto-winner split tests by step id, as last brought up to date (when a contact was assigned)."""
    return {
        test.step_id: {
            "winner": test.winner,
            "declared_at": test.declared_at,
            "declared_by": test.declared_by,
            "evidence": test.evidence,
        }
        for test in session.scalars(select(SplitTest).where(SplitTest.rule_id == rule_id))
    }


def parse_when(text: str | None, now: int, *, name: str = "since") -> int | None:
    """UNIX seconds from ``2026-11-01`` (a UTC day), ``2026-11-01T12:00:00Z``, or a span before *now* (``7d``, ``24h``,
    ``90m``, ``2w``: :func:`server.durations.span_seconds`, as the window settings read them).

    :raises StatsError: naming *name* and the forms accepted.
    """
    if text is None or text == "":
        return None
    from datetime import UTC, datetime

    value = text.strip()
    span = span_seconds(value)  # digits alone are no span here: 20261101 is a day
    if span is not None:
        return now - span
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise StatsError(
            f"{name} {text[:40]!r} is not a date: write 2026-11-01, 2026-11-01T12:00:00Z, or a span such as 7d, 24h, "
            "90m or 2w"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def overview(session: Session, *, since: int | None = None, until: int | None = None) -> dict[str, Any]:
    """The instance's journey sends per UTC day: sent, delivered, failed, bounced, unsubscribed, complained, and
    the conversions and revenue attributed to them (docs/stats.md, "Revenue").
    """
    if since is not None and until is not None and since > until:
        raise StatsError("the window starts after it ends: since must be before until")
    metrics = ("sent", "delivered", "failed", "bounced", "unsubscribed", "complained", "conversions")
    query = (
        select(StatCounter.day, StatCounter.metric, func.sum(StatCounter.count))
        .where(StatCounter.metric.in_((*metrics, "revenue")), StatCounter.rule_id != BROADCAST_RULE)
        .group_by(StatCounter.day, StatCounter.metric)
        .order_by(StatCounter.day)
    )
    if since is not None:
        query = query.where(StatCounter.day >= since // 86400)
    if until is not None:
        query = query.where(StatCounter.day <= until // 86400)
    days: dict[int, dict[str, Any]] = {}
    for day, metric, total in session.execute(query):
        row = days.setdefault(day, {"day": _iso_day(day), **dict.fromkeys(metrics, 0), "revenue": 0})
        row[metric] = int(total or 0)
    totals = {metric: sum(row[metric] for row in days.values()) for metric in (*metrics, "revenue")}
    for row in days.values():
        row["revenue"] = major(row["revenue"])
    return {
        "window": {"since": since, "until": until},
        "totals": {**totals, "revenue": major(totals["revenue"])},
        "days": list(days.values()),
    }


#: the per-template figures, from the send steps' counters
TEMPLATE_METRICS = ("sent", "delivered", "clicked:human", "conversions", "revenue")


def template_stats(session: Session, *, since: int | None = None, until: int | None = None) -> dict[str, Any]:
    """Per template (of journeys' send steps): sent, delivered, human clicks, conversions and revenue.

    Read from the counters (a few rows per step and day) and each version's plan, which names the step's template.
    """
    if since is not None and until is not None and since > until:
        raise StatsError("the window starts after it ends: since must be before until")
    query = (
        select(StatCounter.version_id, StatCounter.step, StatCounter.metric, func.sum(StatCounter.count))
        .where(StatCounter.metric.in_(TEMPLATE_METRICS), StatCounter.rule_id != BROADCAST_RULE)
        .group_by(StatCounter.version_id, StatCounter.step, StatCounter.metric)
    )
    if since is not None:
        query = query.where(StatCounter.day >= since // 86400)
    if until is not None:
        query = query.where(StatCounter.day <= until // 86400)
    rows = list(session.execute(query))
    names: dict[tuple[int, str], str] = {}
    for version_id, plan in session.execute(
        select(RuleVersion.id, RuleVersion.plan).where(RuleVersion.id.in_({r[0] for r in rows}))
    ):
        for i, op in enumerate((plan or {}).get("steps", [])):
            if op.get("op") == "send":
                names[(version_id, str(op.get("id", i)))] = str(op.get("name"))
    templates: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TEMPLATE_METRICS, 0))
    for version_id, step, metric, total in rows:
        templates[names.get((version_id, step), "?")][metric] += int(total or 0)
    return {
        "window": {"since": since, "until": until},
        "templates": [
            {
                "template": name,
                "sent": counts["sent"],
                "delivered": counts["delivered"],
                "clicked_human": counts["clicked:human"],
                "conversions": counts["conversions"],
                "revenue": major(counts["revenue"]),
            }
            for name, counts in sorted(templates.items())
        ],
    }


def _iso_day(day: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(day * 86400, UTC).date().isoformat()


__all__ = [
    "SEND_METRICS",
    "StatsError",
    "broadcast_results",
    "major",
    "overview",
    "parse_when",
    "rule_funnel",
    "template_stats",
]
