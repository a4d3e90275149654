"""Stats: a rule's funnel per step and split arm, and the instance's sends over time (docs/stats.md)."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from ..db import get_session
from ..engine.funnel import StatsError, broadcast_results, overview, parse_when, rule_funnel, template_stats
from ..engine.timeutil import to_ts
from ..models import utcnow
from . import bp
from .common import text
from .spec import ID, BadQuery, NotFound, endpoint, query_param, schema

WINDOW = [
    query_param("since", text(40), "start of the window: 2026-11-01 (a UTC day), an ISO date-time, or 7d/24h/2w ago"),
    query_param("until", text(40), "end of the window (same forms); default: now"),
]
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
#: a send's figures (a rule's send step, a broadcast): counts, and the revenue attributed to it
SEND_FIGURES: dict[str, Any] = {
    **{
        name: {"type": "integer"}
        for name in (
            "sent",
            "delivered",
            "bounced",
            "failed",
            "opened_human",
            "opened_machine",
            "clicked_human",
            "clicked_machine",
            "clickers",
            "unsubscribed",
            "complained",
            "conversions",
        )
    },
    "revenue": {"type": "number", "description": "attributed revenue in the currency unit (e.g. 49.9)"},
}
FIGURES = schema(
    "StepFigures",
    {
        "type": "object",
        "description": "one step's counts in the window (waiting: now)",
        "properties": {
            name: {"type": "integer"} for name in ("reached", "waiting", "passed", "goal", "completed", "stopped")
        }
        | SEND_FIGURES
        | {"exits": COUNTS, "suppressed": COUNTS},
    },
)
FUNNEL = schema(
    "RuleFunnel",
    {
        "type": "object",
        "required": ["rule", "versions", "entered", "steps", "splits"],
        "properties": {
            "rule": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "integer"}},
            "window": {"type": "object"},
            "entered": {"type": "integer"},
            "waiting": {"type": "integer"},
            "completed": {"type": "integer"},
            "goal": {"type": "integer"},
            "stopped": {"type": "integer"},
            "exits": COUNTS,
            "conversion": {"type": "number", "nullable": True, "description": "goal exits / entered"},
            "goal_event": {"type": "string", "nullable": True},
            "conversions": {"type": "integer", "description": "conversions attributed to the rule's messages"},
            "revenue": {"type": "number", "description": "revenue attributed to the rule's messages (currency unit)"},
            "steps": {"type": "array", "items": {"allOf": [FIGURES], "type": "object"}},
            "splits": {"type": "array", "items": {"type": "object"}},
        },
    },
)
DAY = schema(
    "StatsDay",
    {
        "type": "object",
        "description": "one UTC day's journey sends, and the conversions and revenue attributed to them",
        "properties": {
            "day": {"type": "string", "format": "date"},
            **{
                name: {"type": "integer"}
                for name in ("sent", "delivered", "failed", "bounced", "unsubscribed", "complained", "conversions")
            },
            "revenue": {"type": "number", "description": "attributed revenue in the currency unit (0 when none)"},
        },
    },
)
OVERVIEW = schema(
    "StatsOverview",
    {
        "type": "object",
        "required": ["totals", "days"],
        "properties": {
            "window": {"type": "object"},
            "totals": {"allOf": [DAY], "type": "object"},
            "days": {"type": "array", "items": {"allOf": [DAY], "type": "object"}},
        },
    },
)
TEMPLATES = schema(
    "TemplateStats",
    {
        "type": "object",
        "required": ["templates"],
        "properties": {
            "window": {"type": "object"},
            "templates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "template": {"type": "string"},
                        "sent": {"type": "integer"},
                        "delivered": {"type": "integer"},
                        "clicked_human": {"type": "integer"},
                        "conversions": {"type": "integer"},
                        "revenue": {"type": "number", "description": "attributed revenue in the currency unit"},
                    },
                },
            },
        },
    },
)


def _window(query: dict[str, Any]) -> tuple[int | None, int | None]:
    now = to_ts(utcnow())
    window = []
    for name in ("since", "until"):
        try:
            window.append(parse_when(query.get(name), now, name=name))
        except StatsError as exc:
            raise BadQuery(name, str(exc)) from None
    return window[0], window[1]


@endpoint(
    bp,
    "GET",
    "/rules/{name}/stats",
    summary="A rule's funnel: per step and split arm, entered, waiting, passed, exits, sends and their outcomes",
    tag="stats",
    query=[*WINDOW, query_param("version", ID, "one version's journeys only")],
    responses={200: ("the funnel", FUNNEL)},
    description="Read from counters the engine keeps up to date (a few seconds behind); see docs/stats.md.",
)
def rule_stats(name: str, query: dict[str, Any]):
    since, until = _window(query)
    try:
        return jsonify(rule_funnel(get_session(), name, since=since, until=until, version=query.get("version")))
    except StatsError as exc:
        raise NotFound(str(exc)) from None


@endpoint(
    bp,
    "GET",
    "/stats/overview",
    summary="The instance's journey sends per day: sent, delivered, failed, bounced, unsubscribed, complained, "
    "conversions, revenue",
    tag="stats",
    query=WINDOW,
    responses={200: ("totals and days", OVERVIEW)},
    description="Revenue is attributed to the message that touched the contact last (docs/stats.md, Revenue).",
)
def stats_overview(query: dict[str, Any]):
    return _instance_wide(overview, query)


def _instance_wide(read: Any, query: dict[str, Any]):
    """The JSON answer of *read* (overview, templates) for the query's window; a bad window is a 400."""
    since, until = _window(query)
    try:
        return jsonify(read(get_session(), since=since, until=until))
    except StatsError as exc:
        raise BadQuery("since", str(exc)) from None


@endpoint(
    bp,
    "GET",
    "/stats/templates",
    summary="Per template of journeys' sends: sent, delivered, human clicks, conversions and attributed revenue",
    tag="stats",
    query=WINDOW,
    responses={200: ("one row per template", TEMPLATES)},
    description="Read from the stats counters; see docs/stats.md, Revenue.",
)
def stats_templates(query: dict[str, Any]):
    return _instance_wide(template_stats, query)


BROADCAST = schema(
    "BroadcastStats",
    {
        "type": "object",
        "description": "what a broadcast's messages did, as of the last stats rollup (docs/stats.md)",
        "required": ["broadcast"],
        "properties": {"broadcast": {"type": "string"}} | SEND_FIGURES,
    },
)


@endpoint(
    bp,
    "GET",
    "/stats/broadcasts/{ident}",
    summary="A broadcast's results: sent, delivered, opens, clicks, unsubscribes, bounces, complaints, conversions, "
    "revenue",
    tag="stats",
    responses={200: ("its figures", BROADCAST)},
    description="IDENT is the broadcast's id (its messages' keys are broadcast:IDENT:CONTACT). Read from the stats "
    "counters; see docs/stats.md.",
)
def broadcast_stats(ident: str):
    try:
        return jsonify({"broadcast": ident, **broadcast_results(get_session(), ident)})
    except StatsError as exc:
        raise NotFound(str(exc)) from None
