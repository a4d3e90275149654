"""``nudge explain``: a contact's journeys in words, from the trace the engine keeps, and why rules whose
trigger the contact's events match did *not* enrol them (:mod:`server.engine.missed`).

:func:`journey_trace` gives the same as data (the admin UI's contact timeline); :func:`explain_contact`
prints it as lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Contact, Enrolment, EnrolmentState, JourneyLog, Message, MessageStatusChange, Rule
from .autosplit import describe_choice
from .timeutil import iso, to_ts

#: a worker's outcome of one try; ``sent`` and ``suppressed`` are in the journey trace already
_TRIES = {"pending", "failed", "unknown", "sent", "suppressed"}


@dataclass(frozen=True)
class TraceLine:
    """One line of a contact's journeys: when (None for where a journey is now), which rule, what happened.

    ``kind`` is ``journey`` (the engine's trace), ``send`` (a try of a message and what came of it),
    ``missed`` (a rule that did not enrol the contact, and why) or ``now`` (where a journey stands).
    """

    at: int | None
    rule: str
    text: str
    kind: str

    def __str__(self) -> str:
        return self.text if self.at is None else f"{iso(self.at)}  {self.rule}: {self.text}"


def find_contact(session: Session, ref: str) -> Contact:
    query = select(Contact).where(or_(Contact.email == ref.lower(), Contact.external_id == ref))
    contact = session.scalar(query)
    if contact is None and ref.isdecimal() and 0 < int(ref) < 2**31:  # an id the column can hold
        contact = session.get(Contact, int(ref))
    if contact is None:
        raise LookupError(f"no contact with email, external id or id {ref!r}")
    return contact


def describe(action: str, data: dict[str, Any]) -> str:
    if action == "enter":
        text = f"entered because {data['because']}" if data.get("because") else "entered (its trigger fired)"
        return text + (f"; waits until {iso(data['until'])}" if data.get("until") else "")
    if action == "exit":
        return {
            "completed": "finished the journey",
            "goal": "left: reached the goal",
            "stopped": "left: a stop step",
        }.get(str(data.get("reason")), f"left ({data.get('reason')})")
    if action == "wait":
        return f"waited until {iso(data['until'])} ({data.get('why', 'wait')})"
    if action == "best_time":
        return f"chose {data.get('why')}: sends at {iso(data['until'])}" if data.get("until") else str(data.get("why"))
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
    if action == "split" and data.get("auto"):
        return f"split: arm {data.get('arm')}, " + describe_choice(data["auto"])
    if action == "split":
        return f"split: arm {data.get('arm')} (its share, the same arm for this contact every time)"
    if action == "function_failed":
        return (
            f"condition function {data.get('function')}() could not run ({data.get('error')}); "
            "the call had no value, so what depended on it was not true"
        )
    details = ", ".join(f"{k}={v}" for k, v in data.items() if k not in ("message", "step"))
    return f"{action} {details}".strip()


def explain_contact(session: Session, ref: str, rule_name: str | None = None) -> list[str]:
    """``nudge explain``: the lines of :func:`journey_trace` for the contact *ref* (email, external id or id).

    :raises LookupError: for an unknown contact or rule.
    """
    contact = find_contact(session, ref)
    rule_id = None
    if rule_name is not None:
        rule_id = session.scalar(select(Rule.id).where(Rule.name == rule_name))
        if rule_id is None:
            raise LookupError(f"no rule named {rule_name!r}")
    return [str(line) for line in journey_trace(session, contact, rule_id)] or [f"no journeys yet for {ref}"]


def journey_trace(
    session: Session, contact: Contact, rule_id: int | None = None, limit: int | None = None
) -> list[TraceLine]:
    """The contact's journeys, oldest first: the engine's trace, each try of a send that did not simply succeed,
    each rule that did not enrol them (and why), then where each unfinished journey stands now.

    :param rule_id: only this rule's.
    :param limit: at most this many of the latest trace rows (all when None).
    """
    from .missed import not_enrolled

    rules: dict[int | None, str] = dict(session.execute(select(Rule.id, Rule.name)).all())
    query = select(JourneyLog).where(JourneyLog.contact_id == contact.id)
    if rule_id is not None:
        query = query.where(JourneyLog.rule_id == rule_id)
    if limit is not None:
        query = query.order_by(JourneyLog.at.desc(), JourneyLog.id.desc()).limit(limit)
    rows = sorted(session.scalars(query), key=lambda row: (row.at, row.id))
    timed = [
        (row.at, 0, TraceLine(row.at, rules.get(row.rule_id, "-"), describe(row.action, row.data or {}), "journey"))
        for row in rows
    ]
    timed += [
        (at, order, TraceLine(at, rule, text, "send"))
        for at, order, rule, text in send_attempts(session, contact.id, rules, rule_id)
    ]
    timed += [(m.at, 2, TraceLine(m.at, m.rule, m.text, "missed")) for m in not_enrolled(session, contact, rule_id)]
    lines = [line for _at, _order, line in sorted(timed, key=lambda t: (t[0], t[1]))]
    return lines + [
        TraceLine(None, rules.get(enr.rule_id, "-"), text, "now")
        for enr, text in journeys_now(session, contact.id, rules, rule_id)
    ]


def journeys_now(
    session: Session, contact_id: int, rules: dict[int | None, str], rule_id: int | None = None
) -> list[tuple[Enrolment, str]]:
    """Each unfinished journey of the contact (waiting, held by a pause, retrying, parked) and where it stands."""
    query = select(Enrolment).where(
        Enrolment.contact_id == contact_id,
        Enrolment.state.in_((EnrolmentState.ACTIVE, EnrolmentState.HELD, EnrolmentState.PARKED)),
    )
    if rule_id is not None:
        query = query.where(Enrolment.rule_id == rule_id)
    out = []
    for enr in session.scalars(query.order_by(Enrolment.id)):
        name = rules.get(enr.rule_id)
        if enr.state == EnrolmentState.PARKED:
            out.append(
                (
                    enr,
                    f"now parked in {name} after {enr.attempts} failed tries: {enr.error} "
                    "(`nudge messages unpark` tries again)",
                )
            )
            continue
        how = f"held in {name} (paused)" if enr.state == EnrolmentState.HELD else f"waiting in {name}"
        if enr.error:
            out.append(
                (enr, f"now retrying in {name} at {_when(enr.due)} after {enr.attempts} failed try(s): {enr.error}")
            )
        elif enr.wait_event:
            out.append((enr, f"now {how} for {enr.wait_event} until {_when(enr.due)}"))
        elif enr.due:
            out.append((enr, f"now {how} until {iso(enr.due)}"))
    return out


def _when(due: int | None) -> str:
    return iso(due) if due is not None else "no set time"


def send_attempts(
    session: Session, contact_id: int, rules: dict[int | None, str], rule_id: int | None = None
) -> list[tuple[int, int, str, str]]:
    """Each try of each message to the contact that did not simply succeed, and what operators and
    providers said later: ``(unix time, order, rule name, text)``, from the messages' status history."""
    messages = {
        m.id: m
        for m in session.scalars(select(Message).where(Message.contact_id == contact_id))
        if rule_id is None or (m.data or {}).get("rule") == rule_id
    }
    if not messages:
        return []
    out = []
    tries: dict[int, int] = {}
    for change in session.scalars(
        select(MessageStatusChange)
        .where(MessageStatusChange.message_id.in_(messages))
        .order_by(MessageStatusChange.at, MessageStatusChange.id)
    ):
        msg = messages[change.message_id]
        what = f"{msg.channel} {msg.template}"
        if change.source == "worker" and change.status in _TRIES:
            tries[msg.id] = tries.get(msg.id, 0) + 1
            if change.status in ("sent", "suppressed"):
                continue
            text = {
                "pending": f"try {tries[msg.id]} of {what} failed, to be tried again: {change.detail}",
                "failed": f"try {tries[msg.id]} of {what} failed for good: {change.detail}",
                "unknown": f"try {tries[msg.id]} of {what}: outcome unknown, the provider may have it: {change.detail}",
            }[change.status]
        else:  # the scheduler settling a try whose worker stopped, an operator's resend, the provider's report
            text = f"{what} {change.status}" + (f": {change.detail}" if change.detail else "")
        out.append((to_ts(change.at), 1, rules.get((msg.data or {}).get("rule"), "-"), text))
    return out
