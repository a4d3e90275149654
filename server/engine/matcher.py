"""Indexed matching of events to rules: by event name, then by equality tests on event/contact fields.

The cost per event stays flat as rules grow: a rule whose condition says
``event.kind == "trial"`` is only looked at for events whose ``kind`` is ``trial``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Contact, Rule, RuleStatus, RuleVersion
from .scope import contact_value, lookup


@dataclass(frozen=True)
class Entry:
    rule_id: int
    version_id: int


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class EventIndex:
    unkeyed: list[Entry] = field(default_factory=list)
    #: path -> value -> entries; each rule is filed under the first equality test of its condition
    keyed: dict[str, dict[str, list[Entry]]] = field(default_factory=dict)

    def add(self, entry: Entry, match: list[list[Any]]) -> None:
        indexable = [m for m in match if m and str(m[0]).startswith(("event.", "contact."))]
        if not indexable:
            self.unkeyed.append(entry)
            return
        path, value = indexable[0][0], indexable[0][1]
        self.keyed.setdefault(path, {}).setdefault(_key(value), []).append(entry)

    @property
    def reads_contact(self) -> bool:
        """Whether :meth:`candidates` needs the contact (some rule is filed under a contact field)."""
        return any(path.startswith("contact.") for path in self.keyed)

    def candidates(self, props: dict[str, Any], contact: Contact | None) -> list[Entry]:
        """The rules that may match an event with *props* (the contact is needed when :attr:`reads_contact`)."""
        found = list(self.unkeyed)
        for path, by_value in self.keyed.items():
            root, _, rest = path.partition(".")
            if root == "event":
                value = lookup(props, rest)
            elif contact is None:
                raise ValueError(f"matching on {path} needs the contact")
            else:
                value = contact_value(contact, rest)
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            found.extend(by_value.get(_key(value), ()))
        found.sort(key=lambda e: e.rule_id)
        return found


@dataclass
class RuleIndex:
    stamp: tuple[Any, ...]
    by_event: dict[str, EventIndex]
    #: rules with date/schedule/inactivity triggers: (rule_id, version_id, trigger)
    timed: list[tuple[int, int, dict[str, Any]]]
    #: goal event name -> rule ids
    goals: dict[str, set[int]]
    #: every event name some active rule reacts to; others need no matching at all
    listened: frozenset[str] = frozenset()
    #: event names a journey in progress may react to: a goal or a ``wait for`` of any version of any rule
    resumes: frozenset[str] = frozenset()


def counted_events(node: Any) -> set[str]:
    """Event names a plan counts with ``did``: such events must be readable the moment they are raised."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("did"), str):
                found.add(item["did"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


_lock = threading.Lock()
_cache: dict[str, RuleIndex] = {}


def _stamp(session: Session) -> tuple[Any, ...]:
    """Changes whenever a rule is created, changed, paused or resumed (each sets ``updated_at``); two index look-ups."""
    return (session.scalar(select(func.max(Rule.updated_at))), session.scalar(select(func.max(Rule.id))))


def build_index(session: Session) -> RuleIndex:
    stamp = _stamp(session)
    by_event: dict[str, EventIndex] = {}
    timed: list[tuple[int, int, dict[str, Any]]] = []
    goals: dict[str, set[int]] = {}
    listened: set[str] = set()
    rows = session.execute(
        select(Rule.id, RuleVersion.id, RuleVersion.plan)
        .join(RuleVersion, RuleVersion.id == Rule.active_version_id)
        .where(Rule.status == RuleStatus.ACTIVE.value)
        .order_by(Rule.id)
    )
    for rule_id, version_id, plan in rows:
        trigger = plan["trigger"]
        entry = Entry(rule_id, version_id)
        if trigger["kind"] == "event":
            by_event.setdefault(trigger["event"], EventIndex()).add(entry, plan.get("match") or [])
        else:
            timed.append((rule_id, version_id, trigger))
        goal = plan.get("goal")
        if goal:
            goals.setdefault(goal["event"], set()).add(rule_id)
        if trigger.get("event"):
            listened.add(trigger["event"])
    listened.update(goals)
    # contacts may still wait on older versions of a rule: every version's goal, ``wait for`` and ``did`` counts
    resumes: set[str] = set()
    for (plan,) in session.execute(select(RuleVersion.plan)):
        resumes.update(step["event"] for step in plan["steps"] if step["op"] == "wait_for")
        if plan.get("goal"):
            resumes.add(plan["goal"]["event"])
        listened.update(counted_events(plan))
    listened.update(resumes)
    return RuleIndex(stamp, by_event, timed, goals, frozenset(listened), frozenset(resumes))


def rule_index(session: Session, cache_key: str) -> RuleIndex:
    """The index of active rules, rebuilt only when a rule changed (one cheap query per call)."""
    stamp = _stamp(session)
    with _lock:
        current = _cache.get(cache_key)
        if current is not None and current.stamp == stamp:
            return current
    index = build_index(session)
    with _lock:
        _cache[cache_key] = index
    return index
