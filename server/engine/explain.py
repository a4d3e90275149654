"""``nudge explain``: a contact's journeys in words, from the trace the engine keeps."""
from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Contact, Enrolment, EnrolmentState, JourneyLog, Message, MessageStatusChange, Rule
from .timeutil import iso, to_ts

#: a worker's outcome of one try; ``sent`` and ``suppressed`` are in the journey trace already
_TRIES = {"pending", "failed", "unknown", "sent", "suppressed"}


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
    if action == "function_failed":
        return (f"condition function {data.get('function')}() could not run ({data.get('error')}); "
                "the call had no value, so what depended on it was not true")
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
    timed = [(row.at, 0, f"{iso(row.at)}  {rules.get(row.rule_id, '-')}: {describe(row.action, row.data or {})}")
             for row in session.scalars(query.order_by(JourneyLog.at, JourneyLog.id))]
    rule_id = None if rule_name is None else next((rid for rid, name in rules.items() if name == rule_name), None)
    timed += send_attempts(session, contact.id, rules, rule_id)
    lines = [text for _at, _order, text in sorted(timed, key=lambda t: (t[0], t[1]))]
    waiting = session.scalars(select(Enrolment).where(
        Enrolment.contact_id == contact.id,
        Enrolment.state.in_((EnrolmentState.ACTIVE, EnrolmentState.HELD, EnrolmentState.PARKED))))
    for enr in waiting:
        name = rules.get(enr.rule_id)
        if enr.state == EnrolmentState.PARKED:
            lines.append(f"now parked in {name} after {enr.attempts} failed tries: {enr.error} "
                         "(`nudge messages unpark` tries again)")
            continue
        how = f"held in {name} (paused)" if enr.state == EnrolmentState.HELD else f"waiting in {name}"
        if enr.error:
            lines.append(f"now retrying in {name} at {iso(enr.due)} after {enr.attempts} failed try(s): {enr.error}")
        elif enr.wait_event:
            lines.append(f"now {how} for {enr.wait_event} until {iso(enr.due)}")
        elif enr.due:
            lines.append(f"now {how} until {iso(enr.due)}")
    return lines or [f"no journeys yet for {ref}"]


def send_attempts(session: Session, contact_id: int, rules: dict[int, str],
                  rule_id: int | None = None) -> list[tuple[int, int, str]]:
    """Each try of each message to the contact that did not simply succeed, and what operators and
    providers said later: ``(unix time, order, line)``, from the messages' status history."""
    messages = {m.id: m for m in session.scalars(select(Message).where(Message.contact_id == contact_id))
                if rule_id is None or (m.data or {}).get("rule") == rule_id}
    if not messages:
        return []
    out = []
    tries: dict[int, int] = {}
    for change in session.scalars(select(MessageStatusChange).where(MessageStatusChange.message_id.in_(messages))
                                  .order_by(MessageStatusChange.at, MessageStatusChange.id)):
        msg = messages[change.message_id]
        what = f"{msg.channel} {msg.template}"
        if change.source == "worker" and change.status in _TRIES:
            tries[msg.id] = tries.get(msg.id, 0) + 1
            if change.status in ("sent", "suppressed"):
                continue
            text = {"pending": f"try {tries[msg.id]} of {what} failed, to be tried again: {change.detail}",
                    "failed": f"try {tries[msg.id]} of {what} failed for good: {change.detail}",
                    "unknown": f"try {tries[msg.id]} of {what}: outcome unknown, the provider may have it: "
                               f"{change.detail}"}[change.status]
        else:  # the scheduler settling a try whose worker stopped, an operator's resend, the provider's report
            text = f"{what} {change.status}" + (f": {change.detail}" if change.detail else "")
        ts = to_ts(change.at)
        out.append((ts, 1, f"{iso(ts)}  {rules.get((msg.data or {}).get('rule'), '-')}: {text}"))
    return out
