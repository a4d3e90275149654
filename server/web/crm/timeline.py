"""One timeline of a contact, newest first: events, messages (status, tries, errors and their history), the
journey trace (``nudge explain``, including rules that did not enrol them and why), notes and tasks.

Each kind is read with its own indexed query, the latest :data:`PER_KIND` of each, then merged by time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...engine.explain import TraceLine, journey_trace
from ...engine.timeutil import to_dt
from ...models import Contact, Event, Message, MessageStatusChange, Note, Rule, Task

#: the latest this many of each kind
PER_KIND = 100


@dataclass(frozen=True)
class Change:
    """One line of a message's status history."""

    at: datetime
    status: str
    detail: str | None
    source: str


@dataclass
class Item:
    """One entry of the timeline. ``kind``: event, message, journey, missed, note, task."""

    at: datetime
    kind: str
    title: str
    status: str | None = None
    lines: list[str] = field(default_factory=list)
    data: str | None = None
    history: list[Change] = field(default_factory=list)
    link: str | None = None


@dataclass
class Timeline:
    items: list[Item]
    #: where each unfinished journey stands, and the whole trace as ``nudge explain`` prints it
    now: list[TraceLine]
    explain: list[str]
    #: kinds cut at :data:`PER_KIND`
    cut: list[str]


def _json(value: Any) -> str | None:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str) if value else None


def build(session: Session, contact: Contact, authors: dict[str, str]) -> Timeline:
    """The timeline of *contact*; *authors* names the ``user:<id>`` actors of notes."""
    cut: list[str] = []

    def latest(query: Any, kind: str) -> list[Any]:
        rows = list(session.scalars(query.limit(PER_KIND + 1)))
        if len(rows) > PER_KIND:
            cut.append(kind)
        return rows[:PER_KIND]

    cid = contact.id
    rules = dict(session.execute(select(Rule.id, Rule.name)).all())
    items = [
        Item(e.occurred_at, "event", e.name, _event_state(e), _event_lines(e), _json(e.props))
        for e in latest(select(Event).where(Event.contact_id == cid).order_by(Event.id.desc()), "events")
    ]
    messages = latest(select(Message).where(Message.contact_id == cid).order_by(Message.id.desc()), "messages")
    history = histories(session, [m.id for m in messages])
    for m in messages:
        rule_id = (m.data or {}).get("rule")
        rule = rules.get(rule_id) if isinstance(rule_id, int) else None
        lines = (
            [f"attempts: {m.attempts}"]
            + ([f"rule: {rule}"] if rule else [])
            + ([f"error: {m.error}"] if m.error else [])
            + ([f"sent at {m.sent_at:%Y-%m-%d %H:%M:%S} UTC"] if m.sent_at else [])
        )
        items.append(
            Item(
                m.created_at,
                "message",
                f"{m.channel} {m.template}",
                m.status,
                lines,
                history=history.get(m.id, []),
                link=f"#message-{m.id}",
            )
        )
    trace = journey_trace(session, contact, limit=PER_KIND)
    items += [
        Item(to_dt(line.at), line.kind, line.rule, None, [line.text])
        for line in trace
        if line.at is not None and line.kind in ("journey", "missed")
    ]
    for note in latest(select(Note).where(Note.contact_id == cid).order_by(Note.id.desc()), "notes"):
        items.append(
            Item(
                note.created_at,
                "note",
                f"Note by {authors.get(note.author, note.author)}",
                None,
                note.body.splitlines() or [""],
            )
        )
    for task in latest(select(Task).where(Task.contact_id == cid).order_by(Task.id.desc()), "tasks"):
        due = f"due {task.due_at:%Y-%m-%d %H:%M} UTC" if task.due_at else "no due date"
        items.append(
            Item(
                task.created_at,
                "task",
                f"Task #{task.id}" + (f" for {task.team}" if task.team else ""),
                task.status,
                [task.text, due, f"from {task.source}"],
            )
        )
    items.sort(key=lambda item: item.at, reverse=True)
    return Timeline(items, [line for line in trace if line.at is None], [str(line) for line in trace], cut)


def histories(session: Session, message_ids: list[int]) -> dict[int, list[Change]]:
    """The status history of each of the messages, oldest change first (one query)."""
    out: dict[int, list[Change]] = {}
    if message_ids:
        for change in session.scalars(
            select(MessageStatusChange)
            .where(MessageStatusChange.message_id.in_(message_ids))
            .order_by(MessageStatusChange.at, MessageStatusChange.id)
        ):
            out.setdefault(change.message_id, []).append(Change(change.at, change.status, change.detail, change.source))
    return out


def _event_state(event: Event) -> str | None:
    if event.processed_at is not None:
        return None
    return "parked" if event.parked_at is not None else "retrying" if event.attempts else "pending"


def _event_lines(event: Event) -> list[str]:
    lines = [f"source: {event.source}"]
    if event.error:
        lines.append(f"error after {event.attempts} tries: {event.error}")
    return lines


__all__ = ["PER_KIND", "Change", "Item", "Timeline", "build", "histories"]
