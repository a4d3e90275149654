"""The results list (each rule's entered, sent and goals in a window) and a rule's results page (its funnel per step
and split arm, for a window and version; the window and version controls swap the page's body with htmx)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, render_template, request
from sqlalchemy import select

from ...db import get_session
from ...engine.activity import rule_totals
from ...engine.funnel import SEND_METRICS, StatsError, rule_funnel
from ...engine.timeutil import to_ts
from ...models import Role, Rule, RuleVersion, utcnow
from ..access import requires
from ..flash import is_htmx
from . import bp
from .view import (
    SEND_RATES,
    delivery_unreported,
    funnel_chart,
    percent,
    share,
    split_chart,
    step_label,
    unreported_channels,
    unreported_deliveries,
)
from .window import WINDOWS, Window, read_window

MAX_ID = 2**31 - 1


def _render(page: str, body: str, window: Window, **context: Any) -> Any:
    """The whole page, or only its body for the htmx controls; 422 with the errors shown when the choice is bad."""
    status = 422 if window.errors else 200
    template = body if is_htmx() and request.headers.get("HX-Target") == "results-body" else page
    return render_template(template, window=window, windows=WINDOWS, **context), status


@bp.get("/")
@requires(Role.VIEWER)
def index():
    window = read_window(request.args, to_ts(utcnow()))
    rows = [] if window.errors else list(rule_totals(get_session(), since=window.since, until=window.until).values())
    return _render("admin/results/list.html", "admin/results/_list_body.html", window, rows=rows, share=share)


@bp.get("/rules/<int:rule_id>")
@requires(Role.VIEWER)
def rule(rule_id: int):
    session = get_session()
    row = session.get(Rule, rule_id) if 0 < rule_id <= MAX_ID else None
    if row is None:
        abort(404, description=f"There is no rule {rule_id}; it may have been deleted. Results lists every rule.")
    numbers = select(RuleVersion.number).where(RuleVersion.rule_id == row.id).order_by(RuleVersion.number)
    versions = list(session.scalars(numbers))
    window = read_window(request.args, to_ts(utcnow()), versions)
    funnel = None
    unreported = unreported_deliveries(current_app.extensions["nudge.plugins"].channels)
    if not window.errors:
        try:
            funnel = rule_funnel(session, row.name, since=window.since, until=window.until, version=window.version)
        except StatsError as exc:  # the rule or version went away meanwhile
            window.errors["version"] = str(exc)
    return _render(
        "admin/results/rule.html",
        "admin/results/_rule_body.html",
        window,
        rule=row,
        versions=versions,
        funnel=funnel,
        chart=funnel_chart(funnel, unreported) if funnel else None,
        split_chart=split_chart,
        step_label=step_label,
        send_rates=SEND_RATES,
        unreported=unreported,
        delivery_unreported=delivery_unreported,
        unreported_channels=unreported_channels,
        send_metrics=SEND_METRICS,
        percent=percent,
        share=share,
    )
