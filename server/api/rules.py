"""/api/v1/rules: rules as text — validate, save (a new version, activated), pause, resume, versions;
and /contacts/{id}/journeys: the engine's trace of a contact, as ``nudge explain`` prints it."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify
from sqlalchemy import select

from ..contacts import audit, iso
from ..contacts.service import audit_unflushed
from ..db import get_session
from ..engine import rules as store
from ..engine.explain import describe
from ..engine.rulestats import rule_rows
from ..engine.timeutil import iso as iso_ts
from ..engine.timeutil import to_ts
from ..models import Contact, JourneyLog, Rule, RuleVersion, utcnow
from . import bp
from .common import actor, text
from .spec import ID, TIMESTAMP, Refused, endpoint, get_or_404, schema

RULES_TEXT = schema(
    "RulesText",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["text"],
        "properties": {
            "text": text(1_000_000, min_length=1),
            "filename": text(255),
            "migrate": {"type": "boolean", "default": False},
        },
    },
)
DIAGNOSTICS = schema(
    "Diagnostics",
    {
        "type": "object",
        "properties": {
            "valid": {"type": "boolean"},
            "errors": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "rules": {"type": "array", "items": {"type": "string"}},
        },
    },
)
RULE = schema(
    "Rule",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "paused", "draft"]},
            "version": {"type": "integer", "description": "the active version; 0 for a draft rule"},
            "draft_version": {
                "type": "integer",
                "nullable": True,
                "description": "the newest version when it was saved as a draft and not activated",
            },
            "in_flight": {"type": "integer"},
            "origin": {"type": "string", "nullable": True},
            "updated_at": TIMESTAMP,
        },
    },
)
CHANGES = schema(
    "RuleChanges",
    {
        "type": "object",
        "properties": {
            "changes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "action": {"type": "string"},
                        "version": {"type": "integer", "nullable": True},
                        "in_flight": {"type": "integer"},
                        "details": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    },
)
VERSIONS = schema(
    "RuleVersions",
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "number": {"type": "integer"},
                        "active": {"type": "boolean"},
                        "draft": {"type": "boolean", "description": "saved, never activated"},
                        "actor": {"type": "string", "nullable": True},
                        "source": {"type": "string"},
                        "created_at": TIMESTAMP,
                        "activated_at": {**TIMESTAMP, "nullable": True},
                    },
                },
            }
        },
    },
)
JOURNEYS = schema(
    "Journeys",
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": TIMESTAMP,
                        "rule": {"type": "string", "nullable": True},
                        "action": {"type": "string"},
                        "text": {"type": "string"},
                        "data": {"type": "object"},
                    },
                },
            }
        },
    },
)


def _vocabulary() -> Any:
    from ..engine.vocabulary import instance_vocabulary

    return instance_vocabulary(get_session(), current_app.extensions["nudge.plugins"])


def _compile(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    return store.compile_rules([(body.get("filename") or "rules.nudge", body["text"])], _vocabulary())


def _version_actor() -> str:
    """Who saved a version through the API, as versions record it: ``api:<key prefix>``."""
    key = getattr(g, "api_key", None)
    return f"api:{key.prefix}" if key is not None else "api"


def _rule_dict(row: Rule, version: int, in_flight: int, draft: int | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "version": version,
        "draft_version": draft,
        "in_flight": in_flight,
        "origin": row.origin,
        "updated_at": iso(row.updated_at),
    }


@endpoint(
    bp,
    "POST",
    "/rules/validate",
    summary="Check rules text without saving it",
    tag="rules",
    body=RULES_TEXT,
    responses={200: ("every diagnostic, formatted file:line:col", DIAGNOSTICS)},
)
def validate_rules(body: dict[str, Any]):
    plans, errors, warnings = _compile(body)
    return jsonify({"valid": not errors, "errors": errors, "warnings": warnings, "rules": [p["name"] for p in plans]})


@endpoint(
    bp,
    "PUT",
    "/rules",
    summary="Save rules text: changed rules get a new, active version",
    tag="rules",
    body=RULES_TEXT,
    responses={200: ("what changed", CHANGES)},
    description="Contacts mid-journey finish on the version they entered with, unless `migrate` is true.",
)
def put_rules(body: dict[str, Any]):
    plans, errors, _warnings = _compile(body)
    if errors:
        raise Refused(422, "Invalid rules", errors[0].splitlines()[0], field="text", errors=errors)
    session = get_session()
    changes = store.apply_plans(session, plans, origin="api", migrate=bool(body.get("migrate")), actor=_version_actor())
    for change in changes:
        if change.action != "unchanged":
            action = f"rule.{change.action}"
            audit_unflushed(session, actor(), action, "rule", None, name=change.name, version=change.version)
    session.commit()
    return jsonify(
        {
            "changes": [
                {
                    "name": c.name,
                    "action": c.action,
                    "version": c.version,
                    "in_flight": c.in_flight,
                    "details": c.details,
                }
                for c in changes
            ]
        }
    )


@endpoint(
    bp,
    "GET",
    "/rules",
    summary="List rules",
    tag="rules",
    responses={200: ("every rule", {"type": "object", "properties": {"items": {"type": "array", "items": RULE}}})},
)
def list_rules():
    session = get_session()
    rows = {row.id: row for row in rule_rows(session, to_ts(utcnow()))}
    items = [
        _rule_dict(r, rows[r.id].active or 0, rows[r.id].in_flight, rows[r.id].draft)
        for r in session.scalars(select(Rule).order_by(Rule.name))
    ]
    return jsonify({"items": items})


@endpoint(
    bp,
    "GET",
    "/rules/{rule_id}/versions",
    summary="A rule's versions, newest first",
    tag="rules",
    responses={200: ("versions", VERSIONS)},
)
def rule_versions(rule_id: int):
    rule = get_or_404(Rule, rule_id, "rule")
    versions = get_session().scalars(
        select(RuleVersion).where(RuleVersion.rule_id == rule.id).order_by(RuleVersion.number.desc())
    )
    return jsonify(
        {
            "items": [
                {
                    "number": v.number,
                    "active": v.id == rule.active_version_id,
                    "draft": v.activated_at is None,
                    "actor": v.actor,
                    "source": v.source,
                    "created_at": iso(v.created_at),
                    "activated_at": iso(v.activated_at),
                }
                for v in versions
            ]
        }
    )


def _set_state(rule_id: int, verb: str):
    session = get_session()
    rule = get_or_404(Rule, rule_id, "rule")
    try:
        getattr(store, verb)(session, rule.name)
    except store.RuleStateError as exc:
        raise Refused(409, "Rule is a draft", str(exc)) from None
    audit(session, actor(), f"rule.{verb}d", "rule", rule.id)
    session.commit()
    active = session.get(RuleVersion, rule.active_version_id) if rule.active_version_id else None
    version = active.number if active is not None else 0
    return jsonify(_rule_dict(rule, version, store.in_flight(session, rule.id), None))


@endpoint(
    bp,
    "POST",
    "/rules/{rule_id}/pause",
    summary="Pause a rule: no new entries, journeys wait",
    tag="rules",
    responses={200: ("the rule", RULE)},
)
def pause_rule(rule_id: int):
    return _set_state(rule_id, "pause")


@endpoint(
    bp,
    "POST",
    "/rules/{rule_id}/resume",
    summary="Resume a paused rule",
    tag="rules",
    responses={200: ("the rule", RULE)},
)
def resume_rule(rule_id: int):
    return _set_state(rule_id, "resume")


@endpoint(
    bp,
    "GET",
    "/contacts/{contact_id}/journeys",
    summary="Why a contact got what it got: the trace",
    tag="rules",
    responses={200: ("trace lines, oldest first", JOURNEYS)},
)
def contact_journeys(contact_id: int):
    session = get_session()
    contact = get_or_404(Contact, contact_id, "contact")
    names = dict(session.execute(select(Rule.id, Rule.name)).all())
    rows = session.scalars(
        select(JourneyLog).where(JourneyLog.contact_id == contact.id).order_by(JourneyLog.at, JourneyLog.id).limit(1000)
    )
    return jsonify(
        {
            "items": [
                {
                    "at": iso_ts(r.at),
                    "rule": names.get(r.rule_id) if r.rule_id is not None else None,
                    "action": r.action,
                    "text": describe(r.action, r.data or {}),
                    "data": r.data or {},
                }
                for r in rows
            ]
        }
    )
