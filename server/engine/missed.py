"""Why a rule did *not* enrol a contact: for each of the contact's events that a rule's trigger names.

The engine keeps no trace of a rule it passed over, so this works it out afterwards, in the order the
engine decides (:func:`server.engine.dispatch.handle_event`, :func:`server.engine.runtime.may_enter`):

1. the event is not processed yet (waiting, retrying or parked): no rule has seen it;
2. the rule was paused when the event was processed (it is paused now, and was so since before);
3. the rule's condition did not hold: it is evaluated again, at the time the event was processed, with
   the event's properties and the contact *as it is now* (a field changed since then may read
   differently; the line says so);
4. the entry policy refused: ``once`` and the contact had entered before; by default, the contact was
   still mid-journey in the rule; ``once every`` and the last entry was too recent.

Events before the rule's first version, and events that did enrol the contact, give no line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Contact, Enrolment, Event, Rule, RuleStatus, RuleVersion
from .effects import duration_text
from .scope import Scope
from .timeutil import iso, to_ts

#: how many of the contact's latest triggering events are looked at
MAX_EVENTS = 200


@dataclass(frozen=True)
class Missed:
    """One rule that did not enrol the contact on one event: when, which, and why (``reason`` is a word)."""

    at: int
    rule_id: int
    rule: str
    event_id: int
    event: str
    reason: str  # "unprocessed", "paused", "condition", "entry"
    why: str

    @property
    def text(self) -> str:
        return f"not enrolled by {self.event} (event {self.event_id}): {self.why}"


def not_enrolled(
    session: Session, contact: Contact, rule_id: int | None = None, limit: int = MAX_EVENTS
) -> list[Missed]:
    """Each event-triggered rule that did not enrol *contact* on one of its latest *limit* triggering events.

    :param rule_id: only this rule.
    """
    rules = {r.id: r for r in session.scalars(select(Rule).where(*([Rule.id == rule_id] if rule_id else [])))}
    versions: dict[int, list[RuleVersion]] = {}
    for version in session.scalars(
        select(RuleVersion)
        .where(RuleVersion.rule_id.in_(rules))
        .order_by(RuleVersion.rule_id, RuleVersion.created_at, RuleVersion.id)
    ):
        versions.setdefault(version.rule_id, []).append(version)
    by_event: dict[str, list[int]] = {}
    for rid, vs in versions.items():
        for name in {(v.plan.get("trigger") or {}).get("event") for v in vs}:
            if name is not None:
                by_event.setdefault(name, []).append(rid)
    if not by_event:
        return []
    events = list(
        session.scalars(
            select(Event)
            .where(Event.contact_id == contact.id, Event.name.in_(by_event))
            .order_by(Event.id.desc())
            .limit(limit)
        )
    )
    enrolments = list(
        session.scalars(select(Enrolment).where(Enrolment.contact_id == contact.id, Enrolment.rule_id.in_(rules)))
    )
    entered_by = {(e.rule_id, e.event_id) for e in enrolments}
    out = []
    for event in reversed(events):
        for rid in by_event[event.name]:
            if (rid, event.id) in entered_by:
                continue
            seen = to_ts(event.processed_at or event.received_at)
            active = _version_at(versions[rid], event, seen)
            if active is None or (active.plan.get("trigger") or {}).get("event") != event.name:
                continue  # the rule did not exist yet, or did not listen for this event then
            reason, why = _why(
                session,
                contact,
                rules[rid],
                active.plan,
                event,
                seen,
                [e for e in enrolments if e.rule_id == rid and e.event_id != event.id],
            )
            if reason:
                out.append(Missed(seen, rid, rules[rid].name, event.id, event.name, reason, why))
    return out


def _version_at(versions: list[RuleVersion], event: Event, seen: int) -> RuleVersion | None:
    """The rule's newest version made before the event was processed (the one that was active then, unless an
    older one was activated again)."""
    made = [v for v in versions if to_ts(v.created_at) <= seen]
    return made[-1] if made else None


def _why(
    session: Session,
    contact: Contact,
    rule: Rule,
    plan: dict[str, Any],
    event: Event,
    seen: int,
    others: Iterable[Enrolment],
) -> tuple[str, str]:
    """(reason, words) for the first thing that kept the contact out, or ("", "") when nothing explains it."""
    if event.processed_at is None:
        if event.parked_at is not None:
            return (
                "unprocessed",
                f"the event is parked after {event.attempts} failed tries ({event.error}); "
                "`nudge messages unpark` tries it again",
            )
        return "unprocessed", "the event is not processed yet" + (f" (retrying: {event.error})" if event.error else "")
    if rule.status == RuleStatus.PAUSED.value and to_ts(rule.updated_at) <= seen:
        return "paused", f"the rule was paused (since {iso(to_ts(rule.updated_at))})"
    condition = plan.get("condition")
    if condition is not None:
        failed = _failing_part(session, contact, condition, event, seen)
        if failed is not None:
            part, value = failed
            return "condition", f"its condition `{part}` was {value} (checked with the contact as it is now)"
    earlier = [e for e in others if e.entered <= seen]
    policy = plan.get("entry") or {}
    kind = policy.get("kind", "default")
    if kind == "once" and earlier:
        first = min(e.entered for e in earlier)
        return "entry", f"its entry policy is `once` and the contact entered at {iso(first)}"
    if kind in ("default", "once_every"):
        inside = [e for e in earlier if e.finished is None or e.finished > seen]
        if inside:
            return (
                "entry",
                f"the contact was still in this journey (entered at {iso(inside[0].entered)}); "
                "it enters again after finishing",
            )
    if kind == "once_every":
        window = int(policy.get("every") or 0)
        recent = [e.entered for e in earlier if e.entered > seen - window]
        if recent:
            return (
                "entry",
                f"its entry policy is `once every {duration_text(window)}` and the contact entered at "
                f"{iso(max(recent))}",
            )
    if rule.status == RuleStatus.PAUSED.value:
        return "paused", f"the rule may have been paused then: it is paused now (since {iso(to_ts(rule.updated_at))})"
    return "", ""


def _failing_part(
    session: Session, contact: Contact, condition: Any, event: Event, seen: int
) -> tuple[str, str] | None:
    """The condition (or, for an ``and``, its first part) that is not true, and whether it is false or unknown."""
    from dsl import truth

    scope = Scope(session, contact, seen, dict(event.props or {}))
    if truth(condition, scope) is True:
        return None
    parts = condition["and"] if isinstance(condition, dict) and "and" in condition else [condition]
    for part in parts:
        value = truth(part, scope)
        if value is not True:
            return condition_text(part), "false" if value is False else "unknown (a value it reads is not set)"
    return condition_text(condition), "false"


_OPS = {
    "==": "==",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "in": "in",
    "contains": "contains",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "+": "+",
    "-": "-",
    "*": "*",
    "/": "/",
}


def condition_text(node: Any, nested: bool = False) -> str:
    """A condition tree (docs/plan.md) written back in the rules language, for people."""
    if isinstance(node, list):
        return "[" + ", ".join(condition_text(item) for item in node) + "]"
    if not isinstance(node, dict) or not node:
        return json.dumps(node, ensure_ascii=False)
    if "did" in node:
        where = f" where {condition_text(node['where'])}" if node.get("where") is not None else ""
        times = f" at least {node['at_least']} times" if (node.get("at_least") or 1) > 1 else ""
        return f"did {node['did']}{where}{times} within {duration_text(int(node.get('within') or 0))}"
    if len(node) != 1:
        return json.dumps(node, ensure_ascii=False)
    ((key, value),) = node.items()
    if key in ("and", "or"):
        text = f" {key} ".join(condition_text(item, True) for item in value)
        return f"({text})" if nested else text
    if key == "not":
        if isinstance(value, dict) and "is_set" in value:
            return f"{condition_text(value['is_set'])} is not set"
        if isinstance(value, dict) and "has_tag" in value:
            return f"tag != {json.dumps(value['has_tag'], ensure_ascii=False)}"
        return f"not ({condition_text(value)})"
    simple: dict[str, Callable[[Any], str]] = {
        "field": lambda v: f"contact.{v}",
        "prop": lambda v: f"event.{v}",
        "now": lambda v: "now",
        "today": lambda v: "today",
        "duration": lambda v: duration_text(int(v)),
        "time": str,
        "date": str,
        "has_tag": lambda v: f"tag == {json.dumps(v, ensure_ascii=False)}",
        "segment": lambda v: f"in segment {json.dumps(v, ensure_ascii=False)}",
        "is_set": lambda v: f"{condition_text(v)} is set",
    }
    if key in simple:
        return simple[key](value)
    if key == "matches":
        return f"{condition_text(value[0])} matches {json.dumps(value[1], ensure_ascii=False)}"
    if key in _OPS and isinstance(value, list) and len(value) == 2:
        return f"{condition_text(value[0], True)} {_OPS[key]} {condition_text(value[1], True)}"
    return json.dumps(node, ensure_ascii=False)


__all__ = ["MAX_EVENTS", "Missed", "condition_text", "not_enrolled"]
