"""``nudge stats``: a rule's funnel per step and split arm, or the instance's sends per day (docs/stats.md)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

#: the funnel table's columns: heading, the step figure shown
COLUMNS = (
    ("REACHED", "reached"),
    ("WAITING", "waiting"),
    ("PASSED", "passed"),
    ("GOAL", "goal"),
    ("DONE", "completed"),
    ("STOPPED", "stopped"),
    ("SENT", "sent"),
    ("DELIV", "delivered"),
    ("BOUNCED", "bounced"),
    ("FAILED", "failed"),
    ("OPENED", "opened_human"),
    ("M.OPEN", "opened_machine"),
    ("CLICKED", "clicked_human"),
    ("UNSUB", "unsubscribed"),
    ("COMPL", "complained"),
    ("CONV", "conversions"),
    ("REVENUE", "revenue"),
)


def funnel_table(funnel: dict[str, Any]) -> list[str]:
    """The funnel as text lines: the rule's totals, one line per step (and per arm under it), the split verdicts."""
    conversion = funnel["conversion"]
    lines = [
        f"rule {funnel['rule']!r}, version(s) {', '.join(map(str, funnel['versions'])) or '-'}: "
        f"entered {funnel['entered']}, waiting {funnel['waiting']}, completed {funnel['completed']}, "
        f"goal {funnel['goal']}, stopped {funnel['stopped']}"
        + (f", conversion {conversion:.1%} to {funnel['goal_event']}" if conversion is not None else "")
        + (
            f"; attributed: {funnel['conversions']} conversion(s), revenue {funnel['revenue']:g}"
            if funnel["conversions"]
            else ""
        ),
        f"{'STEP':<14} {'OP':<24} " + " ".join(f"{head:>7}" for head, _ in COLUMNS) + "  SUPPRESSED",
    ]

    def line(label: str, op: str, figures: dict[str, Any]) -> str:
        suppressed = ", ".join(f"{why} {n}" for why, n in sorted(figures["suppressed"].items())) or "-"
        return f"{label:<14} {op[:24]:<24} " + " ".join(f"{figures[key]:>7}" for _, key in COLUMNS) + f"  {suppressed}"

    for step in funnel["steps"]:
        what = f"{step['op']} {step.get('template') or ''}".strip() + (
            f" (line {step['line']})" if step["line"] else ""
        )
        lines.append(line(step["step"], what, step))
        for arm, figures in sorted(step.get("arms", {}).items()):
            lines.append(line(f"  arm {arm}", "", figures))
    for split in funnel["splits"]:
        comparison = split["comparison"]
        lines.append(f"split {split['step']} on {split['outcome']}: {_verdict(comparison)}")
        for arm in comparison.get("arms", []):
            rate = "-" if arm["rate"] is None else f"{arm['rate']:.1%}"
            beats = arm["probability_beats_first"]
            attributed = arm.get("conversions")
            lines.append(
                f"  {arm['name']:<12} {arm['converted']:>6}/{arm['exposed']:<6} rate {rate:>6} "
                f"95% [{arm['interval']['low']:.1%}, {arm['interval']['high']:.1%}] "
                f"P(beats first) {'-' if beats is None else f'{beats:.3f}'}  {arm['status']}"
                + ("" if attributed is None else f"; attributed: {attributed}, revenue {arm['revenue']}")
            )
        if "auto" in split:
            lines.extend(auto_lines(split["auto"]))
    return lines


def auto_lines(auto: dict[str, Any]) -> list[str]:
    """An auto-winner split's test as text lines: the winner (when, by whom) or the phase, then each arm's evidence."""
    from ..engine.timeutil import iso

    evidence = auto.get("evidence") or {}
    if auto.get("winner"):
        head = f"  auto-winner: arm {auto['winner']} declared {iso(auto['declared_at'])} by {auto['declared_by']}"
    else:
        head = f"  auto-winner: no winner yet ({evidence.get('phase', 'no contact assigned yet')})"
    lines = [head]
    for arm in evidence.get("arms", []):
        p_best, loss = arm.get("p_best"), arm.get("expected_loss")
        lines.append(
            f"    {arm['name']:<4} {arm['successes']:>6}/{arm['decided']:<6} decided of {arm['assigned']:<6} "
            f"Beta({arm['alpha']:g}, {arm['beta']:g})  P(best) {'-' if p_best is None else f'{p_best:.3f}'}  "
            f"expected loss {'-' if loss is None else f'{loss:.5f}'}"
        )
    return lines


def _verdict(comparison: dict[str, Any]) -> str:
    if "error" in comparison:
        return comparison["error"]
    verdict = comparison["verdict"]
    return f"{verdict['status']}: {verdict['message']}"


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("rule", required=False)
    @click.option("--since", help="Start of the window: 2026-11-01, 2026-11-01T12:00:00Z, or 7d / 24h / 2w ago.")
    @click.option("--until", help="End of the window (same forms); default: now.")
    @click.option("--version", "version", type=click.IntRange(min=1), help="Only journeys of this rule version.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (the API's answer) instead of a table.")
    @click.option("--templates", is_flag=True, help="Per template: sends, clicks, conversions and revenue.")
    @click.option("--broadcast", "broadcast", metavar="ID", help="One broadcast's results (sends, opens, clicks, …).")
    @click.option(
        "--recompute-revenue",
        is_flag=True,
        help="Attribute every stored event again with today's attribution settings (all or nothing).",
    )
    def stats(
        rule: str | None,
        since: str | None,
        until: str | None,
        version: int | None,
        as_json: bool,
        templates: bool,
        broadcast: str | None,
        recompute_revenue: bool,
    ) -> None:
        """A rule's funnel per step and split arm; without RULE, the journey sends per day; with --broadcast ID, one
        broadcast's results."""
        from ..db import get_session
        from ..engine.funnel import StatsError, broadcast_results, overview, parse_when, rule_funnel, template_stats
        from ..engine.timeutil import to_ts
        from ..models import utcnow
        from . import build_app

        if recompute_revenue:
            if rule or since or until or version or templates or as_json or broadcast:
                raise click.UsageError("--recompute-revenue takes no other argument or option")
            _recompute()
            return
        app = build_app()
        with app.app_context():
            session = get_session()
            now = to_ts(utcnow())
            try:
                start, end = parse_when(since, now), parse_when(until, now, name="until")
                if broadcast is not None:
                    if rule is not None or version is not None or templates or since or until:
                        raise StatsError("--broadcast covers the broadcast's whole life: give no RULE or other option")
                    data = {"broadcast": broadcast, **broadcast_results(session, broadcast)}
                elif templates:
                    if rule is not None or version is not None:
                        raise StatsError("--templates covers every rule: give no RULE or --version")
                    data = template_stats(session, since=start, until=end)
                elif rule is None:
                    if version is not None:
                        raise StatsError("--version needs a RULE")
                    data = overview(session, since=start, until=end)
                else:
                    data = rule_funnel(session, rule, since=start, until=end, version=version)
            except StatsError as exc:
                raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=True))
        elif broadcast is not None:
            shown = [h for h, key in COLUMNS if key in data]
            click.echo(f"{'BROADCAST':<24} " + " ".join(f"{h:>8}" for h in shown))
            click.echo(f"{broadcast[:24]:<24} " + " ".join(f"{data[key]:>8}" for h, key in COLUMNS if key in data))
        elif templates:
            columns = ("sent", "delivered", "clicked_human", "conversions", "revenue")
            click.echo(f"{'TEMPLATE':<24} " + " ".join(f"{h.upper():>14}" for h in columns))
            for row in data["templates"]:
                click.echo(f"{row['template'][:24]:<24} " + " ".join(f"{row[h]:>14}" for h in columns))
        elif rule is None:
            heads = ("sent", "delivered", "failed", "bounced", "unsubscribed", "complained", "conversions", "revenue")
            click.echo(f"{'DAY':<11} " + " ".join(f"{h.upper():>12}" for h in heads))
            for day in data["days"]:
                click.echo(f"{day['day']:<11} " + " ".join(f"{day[h]:>12}" for h in heads))
            click.echo(f"{'total':<11} " + " ".join(f"{data['totals'][h]:>12}" for h in heads))
        else:
            for text in funnel_table(data):
                click.echo(text)


def _recompute() -> None:
    """``nudge stats --recompute-revenue``: every event attributed again, with a progress bar; all or nothing."""
    from ..db import get_session
    from ..engine.attribution import event_count, recompute
    from . import build_app

    app = build_app()
    with app.app_context():
        session = get_session()
        total = event_count(session)
        session.rollback()  # the recompute's transaction starts clean
        with click.progressbar(length=total, label="attributing events", file=sys.stderr) as bar:
            done = recompute(session, app.config, progress=bar.update)
    click.echo(
        f"{done['attributed']} of {done['events']} events attributed with the windows set now "
        f"(click {app.config['ATTRIBUTION_CLICK_WINDOW']}, delivery {app.config['ATTRIBUTION_DELIVERY_WINDOW']})"
    )
