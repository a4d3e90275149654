"""Work that needs an operator, and what an operator can do about it.

Listed by ``nudge messages`` (and ``GET /api/v1/messages``): sends that failed, whose outcome is
unknown, or that are retrying; events and journeys that are retrying or parked. Resolved by
``nudge messages resend`` / ``POST /api/v1/messages/resend`` (a send goes out again) and
``nudge messages unpark`` (parked events and journeys are tried again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db import affected_rows
from ..models import Enrolment, EnrolmentState, Event, Message, MessageStatus, MessageStatusChange, utcnow
from .timeutil import to_ts

#: what an operator may send again: the outcome is unknown, or the send gave up
RESENDABLE = (MessageStatus.UNKNOWN.value, MessageStatus.FAILED.value)


class ResendError(Exception):
    """A resend that cannot be done; nothing was changed. ``status`` is the HTTP answer it maps to."""

    def __init__(self, message: str, status: int, field: str):
        super().__init__(message)
        self.status, self.field = status, field


@dataclass(frozen=True)
class Stuck:
    """One piece of failed work: ``kind`` is ``event`` or ``journey``; ``parked`` or retrying at ``retry_at``."""

    kind: str
    id: int
    contact_id: int
    what: str
    attempts: int
    error: str
    parked: bool
    retry_at: int | None


def retrying_messages(session: Session, limit: int) -> list[Message]:
    """Sends waiting for another try after a failure (``pending`` with attempts behind them)."""
    return list(
        session.scalars(
            select(Message)
            .where(Message.status == MessageStatus.PENDING.value, Message.attempts > 0)
            .order_by(Message.id.desc())
            .limit(limit)
        )
    )


def stuck_work(session: Session, limit: int) -> list[Stuck]:
    """Events and journeys that failed: retrying (with their back-off) or parked; parked ones first."""
    out = []
    for event in session.scalars(
        select(Event).where(Event.processed_at.is_(None), Event.attempts > 0).order_by(Event.id.desc()).limit(limit)
    ):
        out.append(
            Stuck(
                "event",
                event.id,
                event.contact_id,
                event.name,
                event.attempts,
                event.error or "",
                event.parked_at is not None,
                to_ts(event.retry_at) if event.retry_at else None,
            )
        )
    from ..models import Rule

    names = dict(session.execute(select(Rule.id, Rule.name)).all())
    for enr in session.scalars(
        select(Enrolment).where(Enrolment.error.is_not(None)).order_by(Enrolment.id.desc()).limit(limit)
    ):
        parked = enr.state == EnrolmentState.PARKED
        out.append(
            Stuck(
                "journey",
                enr.id,
                enr.contact_id,
                f"{names.get(enr.rule_id, enr.rule_id)} step {enr.pc}",
                enr.attempts or 0,
                enr.error or "",
                parked,
                None if parked else enr.due,
            )
        )
    return sorted(out, key=lambda s: (not s.parked, s.kind, -s.id))[:limit]


def resend(session: Session, actor: str, ids: Iterable[int] = (), status: str | None = None) -> list[int]:
    """Put messages back to ``pending`` to be sent again: those of *ids*, or every one with *status*.

    All or nothing: an unknown id, or a message that is not failed or unknown, changes nothing.
    Each resent message gets a status-history line naming *actor*. The caller commits and enqueues.
    :raises ResendError: naming the first message that cannot be resent, and why.
    """
    ids = list(dict.fromkeys(ids))
    if status is not None:
        if status not in RESENDABLE:
            raise ResendError(f"only failed or unknown messages can be resent, not {status!r}", 422, "status")
        ids = list(session.scalars(select(Message.id).where(Message.status == status).order_by(Message.id)))
    rows = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))} if ids else {}
    for message_id in ids:
        msg = rows.get(message_id)
        if msg is None:
            raise ResendError(f"there is no message with id {message_id}", 404, "ids")
        if msg.status not in RESENDABLE:
            raise ResendError(
                f"message {message_id} is {msg.status}: only failed or unknown messages can be resent"
                + ("; it is still on its way" if msg.status in ("pending", "sending") else ""),
                409,
                "ids",
            )
    now = utcnow().replace(microsecond=0)  # engine clocks tick in whole seconds
    for message_id in ids:
        # attempts start again: a send that had used up its tries gets all of them
        session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status.in_(RESENDABLE))
            .values(
                status=MessageStatus.PENDING.value, attempts=0, claimed_at=None, sending_at=None, next_attempt_at=now
            )
        )
        session.add(
            MessageStatusChange(
                message_id=message_id,
                status=MessageStatus.PENDING.value,
                detail=f"resend requested by {actor}",
                source="operator",
                at=now,
            )
        )
    return ids


def unpark(session: Session, events: Iterable[int] = (), journeys: Iterable[int] = ()) -> tuple[int, int]:
    """Try parked events and journeys again now (all of them when no ids are given), with fresh attempts.

    :return: how many events and journeys were unparked. The caller commits.
    """
    events, journeys = list(events), list(journeys)
    pick_events = [Event.id.in_(events)] if events or journeys else []
    pick_journeys = [Enrolment.id.in_(journeys)] if events or journeys else []
    now = utcnow().replace(microsecond=0)  # engine clocks tick in whole seconds
    unparked_events = affected_rows(
        session.execute(
            update(Event)
            .where(Event.processed_at.is_(None), Event.parked_at.is_not(None), *pick_events)
            .values(parked_at=None, retry_at=now, attempts=0)
        )
    )
    unparked_journeys = affected_rows(
        session.execute(
            update(Enrolment)
            .where(Enrolment.state == EnrolmentState.PARKED.value, *pick_journeys)
            .values(state=EnrolmentState.ACTIVE.value, due=to_ts(now), attempts=0)
        )
    )
    return unparked_events, unparked_journeys
