"""What the results pages draw: a funnel's steps, splits and charts, and the instance's days, from the stats dicts.

Rates of a send step are shares of its messages sent (delivered, opened, clicked, unsubscribed), people and
machines apart; docs/admin.md, "Results", says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..charts import Bar, bar_chart, line_chart

#: a send step's rates: (field, column heading), each a share of the step's messages sent
SEND_RATES = (
    ("delivered", "Delivered"),
    ("opened_human", "Opened (people)"),
    ("opened_machine", "Opened (machines)"),
    ("clicked_human", "Clicked (people)"),
    ("clicked_machine", "Clicked (machines)"),
    ("unsubscribed", "Unsubscribed"),
)
#: the dashboard's lines per chart: (chart title, [(series name, overview field)])
ACTIVITY = (
    ("Events received", [("events", "events")]),
    ("Sends", [("sent", "sent"), ("delivered", "delivered")]),
    ("Failures", [("failed", "failed"), ("bounced", "bounced")]),
    ("Unsubscribes and complaints", [("unsubscribed", "unsubscribed"), ("complained", "complained")]),
    ("Revenue", [("revenue", "revenue")]),
)


def percent(value: float | None) -> str:
    """A share as ``12.5 %``; ``—`` for none."""
    return "—" if value is None else f"{value * 100:.1f} %"


def share(part: int, whole: int) -> str:
    """*part* of *whole* as a percentage; ``—`` when *whole* is 0."""
    return percent(part / whole) if whole else "—"


def unreported_deliveries(channels: Mapping[str, Any]) -> set[str]:
    """The channels whose providers do not confirm deliveries as a rule (their ``delivery_receipts`` declaration):
    a delivery count of 0 on them means "not reported", not "none delivered"."""
    return {name for name, cls in channels.items() if not cls.reports_deliveries()}


def delivery_unreported(step: Mapping[str, Any], unreported: set[str]) -> bool:
    """Whether a send *step*'s deliveries read "not reported": its channel is one of *unreported*
    (:func:`unreported_deliveries`) and no delivery report came in, so its 0 is unknown, not none delivered."""
    return step.get("op") == "send" and step.get("channel") in unreported and not step.get("delivered")


def unreported_channels(steps: list[dict[str, Any]], unreported: set[str]) -> list[str]:
    """The channels of *steps* whose deliveries read "not reported" (:func:`delivery_unreported`), sorted."""
    return sorted({step["channel"] for step in steps if delivery_unreported(step, unreported)})


def step_label(step: dict[str, Any]) -> str:
    """A step as people read it: ``send offer_a (line 4)``, ``wait (line 5)``, ``end of the rule``."""
    if step.get("op") in ("exit", "end") and step.get("step") == "end":
        return "end of the rule"
    text = str(step.get("op") or "?")
    if step.get("template"):
        text += f" {step['template']}"
    if step.get("op") == "?":
        text = f"step {step.get('step')}"
    return text + (f" (line {step['line']})" if step.get("line") else "")


def _step_text(step: dict[str, Any], unreported: set[str]) -> str:
    if step.get("op") == "send":
        delivered = (
            "delivery not reported" if delivery_unreported(step, unreported) else f"{step['delivered']} delivered"
        )
        return f"{step['sent']} sent, {delivered}, {step['clicked_human']} clicked"
    exits = ", ".join(f"{n} {reason}" for reason, n in sorted(step.get("exits", {}).items()))
    text = f"{step['reached']} reached, {step['waiting']} waiting, {step['passed']} passed"
    return text + (f", {exits}" if exits else "")


def funnel_chart(funnel: dict[str, Any], unreported: set[str]) -> Any:
    """The funnel as bars: the contacts that entered, then per step those reached (a send: its messages sent).

    :param unreported: the channels confirming no deliveries (:func:`unreported_deliveries`): their sends' bars
        say "delivery not reported", as the table does, not "0 delivered".
    """
    bars = [Bar("entered the rule", funnel["entered"], f"{funnel['entered']} entered")]
    for step in funnel["steps"]:
        value = step["sent"] if step.get("op") == "send" else max(step["reached"], step["completed"] + step["goal"])
        bars.append(Bar(step_label(step), value, _step_text(step, unreported)))
    return bar_chart(bars, title=f"Funnel of rule {funnel['rule']}")


def split_chart(split: dict[str, Any]) -> Any:
    """A split's arms: each arm's rate with its credible interval as whiskers, and its sample size."""
    arms = split["comparison"].get("arms", [])
    bars = []
    for arm in arms:
        low, high = arm["interval"]["low"], arm["interval"]["high"]
        text = f"{percent(arm['rate'])} ({percent(low)}–{percent(high)}), {arm['converted']}/{arm['exposed']}"
        bars.append(Bar(f"arm {arm['name']}", arm["rate"] or 0.0, text, low, high))
    top = max([b.high or 0.0 for b in bars] + [0.01])
    return bar_chart(bars, title=f"Arms of split {split['step']}: {split['outcome']}", maximum=top)


def activity_days(days: list[int], sends: dict[str, Any], events: dict[str, int]) -> list[dict[str, Any]]:
    """One row per UTC day of the window (days without activity are zeros): events and the overview's figures."""
    from datetime import UTC, datetime

    by_day = {row["day"]: row for row in sends.get("days", [])}
    rows = []
    for number in days:
        iso = datetime.fromtimestamp(number * 86400, UTC).date().isoformat()
        row = by_day.get(iso, {})
        rows.append(
            {
                "day": iso,
                "events": events.get(iso, 0),
                **{f: row.get(f, 0) for f in ("sent", "delivered", "failed", "bounced", "unsubscribed", "complained")},
                "revenue": row.get("revenue"),
            }
        )
    return rows


def activity_charts(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The dashboard's line charts over *rows* (:func:`activity_days`); revenue only where it is measured."""
    labels = [row["day"][5:] for row in rows]
    out = []
    for title, lines in ACTIVITY:
        series = {name: [row.get(field) for row in rows] for name, field in lines}
        if all(v is None for points in series.values() for v in points):
            continue  # not measured (revenue before attribution): the table says "—"
        out.append((title, line_chart(labels, series, title=f"{title} per day")))
    return out


__all__ = [
    "SEND_RATES",
    "activity_charts",
    "activity_days",
    "delivery_unreported",
    "funnel_chart",
    "percent",
    "share",
    "split_chart",
    "step_label",
    "unreported_channels",
    "unreported_deliveries",
]
