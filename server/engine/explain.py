"""``nudge explain``: a contact's journeys in words, from the trace the engine keeps."""
from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Contact, Enrolment, EnrolmentState, JourneyLog, Rule
from .timeutil import iso


def find_contact(session: Session, ref: str) -> Contact:
    query = select(Contact).where(or_(Contact.email == ref.lower(), Contact.external_id == ref))
    contact = session.scalar(query)
    if contact is None and ref.isdigit():
        contact = session.get(Contact, int(ref))
    if contact is None:
        raise LookupError(f"no contact with email, external id or id {ref!r}")
    return contact


def describe(action: str, data: dict[str, Any]) -> str:
    if action == "enter":
        text = f"entered because {data['because']}" if data.get("because") else "entered (its trigger fired)"
        return text + (f"; waits until {iso(data['until'])}" if data.get("until") else "")
    if action == "exit":
        return {"completed": "finished the journey", "goal": "left: reached the goal",
                "stopped": "left: a stop step"}.get(data.get("reason"), f"left ({data.get('reason')})")
    if action == "wait":
        return f"waited until {iso(data['until'])} ({data.get('why', 'wait')})"
    if action == "branch":
        taken = bool(data.get("taken"))
        because = f" because `{data['cond']}` was {str(taken).lower()}" if data.get("cond") else ""
        return f"took `{'then' if taken else 'else'}`{because}"
    if action == "send":
        return f"sent {data.get('channel')} {data.get('template')}"
    if action == "suppressed":
        return f"did not send {data.get('channel')} {data.get('template')}: {data.get('reason')}"
    if action == "timeout":
        return f"gave up waiting for {data.get('event')}"
    if action == "received":
        return f"received {data.get('event')}"
    details = ", ".join(f"{k}={v}" for k, v in data.items() if k not in ("message", "step"))
    return f"{action} {details}".strip()


def explain_contact(session: Session, ref: str, rule_name: str | None = None) -> list[str]:
    contact = find_contact(session, ref)
    rules = dict(session.execute(select(Rule.id, Rule.name)).all())
    query = select(JourneyLog).where(JourneyLog.contact_id == contact.id)
    if rule_name is not None:
        rule_id = next((rid for rid, name in rules.items() if name == rule_name), None)
        if rule_id is None:
            raise LookupError(f"no rule named {rule_name!r}")
        query = query.where(JourneyLog.rule_id == rule_id)
    lines = []
    for row in session.scalars(query.order_by(JourneyLog.at, JourneyLog.id)):
        lines.append(f"{iso(row.at)}  {rules.get(row.rule_id, '-')}: {describe(row.action, row.data or {})}")
    waiting = session.scalars(select(Enrolment).where(
        Enrolment.contact_id == contact.id, Enrolment.state.in_((EnrolmentState.ACTIVE, EnrolmentState.HELD))))
    for enr in waiting:
        name = rules.get(enr.rule_id)
        how = f"held in {name} (paused)" if enr.state == EnrolmentState.HELD else f"waiting in {name}"
        if enr.wait_event:
            lines.append(f"now {how} for {enr.wait_event} until {iso(enr.due)}")
        elif enr.due:
            lines.append(f"now {how} until {iso(enr.due)}")
    return lines or [f"no journeys yet for {ref}"]
