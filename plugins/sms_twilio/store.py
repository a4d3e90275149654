"""What Twilio tells us, written down: status history, the SMS consent ledger and the events they raise.

Used by this plugin's endpoints (and by the channel for error 21610); it runs inside
the app context and hands every event it stores to the engine after the commit.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import get_session
from server.engine.ingest import record_event
from server.engine.jobs import process_events
from server.models import Consent, ConsentStatus, Contact, Message, MessageStatus, MessageStatusChange, utcnow
from server.queue import get_queue
from server.sdk import DeliveryStatus

from .channel import UNSUBSCRIBED
from .phone import normalise, region_of, stored_forms

log = logging.getLogger(__name__)

CHANNEL = "sms"
SOURCE = "twilio"

#: Twilio's message statuses in the order they can happen; the last rank holds the alternative endings.
#: ``failed`` is also what the status history says after an ``undelivered`` report.
RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
        "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4}
#: endings that raise an event: Twilio status -> event suffix (``sms.delivered``, ``sms.failed``)
FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
FAILED = {"undelivered", "failed"}


def find_contacts(session: Session, e164: str) -> list[Contact]:
    """Contacts whose phone is this number, however it was written (``+1 415-555-2671``, ``(415) 555-2671`` …)."""
    region = region_of(e164)
    found = []
    for contact in session.scalars(select(Contact).where(Contact.phone.in_(stored_forms(e164))).order_by(Contact.id)):
        try:
            if normalise(contact.phone, region) == e164:
                found.append(contact)
        except ValueError:
            continue
    return found


def record_consent(session: Session, contacts: Iterable[Contact], status: ConsentStatus, source: str,
                   event: str, props: dict[str, Any]) -> list[int]:
    """Append one consent ledger row and raise *event* per contact; returns the event ids."""
    now = utcnow()
    ids = []
    for contact in contacts:
        session.add(Consent(contact_id=contact.id, channel=CHANNEL, status=status.value, source=source, recorded_at=now))
        ids.append(record_event(session, contact, event, props, occurred_at=now, source=SOURCE).id)
    return ids


def hand_over(event_ids: list[int]) -> None:
    """Let the engine match the stored events (call after the commit)."""
    if event_ids:
        get_queue().enqueue(process_events, event_ids)


def record_provider_opt_out(phone: str) -> None:
    """Twilio refused a send with error 21610: the number replied STOP at some point, so write that down."""
    session = get_session()
    contacts = find_contacts(session, phone)
    ids = record_consent(session, contacts, ConsentStatus.REVOKED, f"{SOURCE}:{UNSUBSCRIBED}", "sms.opted_out",
                         {"phone": phone, "via": f"error {UNSUBSCRIBED}"})
    session.commit()  # a fact from the provider: it must not depend on how the caller ends its transaction
    hand_over(ids)


def apply_status(sid: str, status: str, error_code: str | None) -> None:
    """Record a delivery report, but only if it moves the message forward (callbacks arrive out of order).

    ``delivered`` and ``undelivered``/``failed`` go through the plugin manager's ``record_status`` (status
    history, ``sms.delivered`` / ``sms.failed``); the steps before them only join the status history.
    """
    session = get_session()
    status = status.lower()
    if status not in RANK:
        log.info("ignoring unknown Twilio status %r for %s", status, sid)
        return
    msg = session.scalar(select(Message).where(Message.provider_id == sid, Message.channel == CHANNEL).with_for_update())
    if msg is None:
        log.info("status %s for unknown Twilio message %s", status, sid)
        session.rollback()
        return
    current = session.scalar(select(MessageStatusChange.status)
                             .where(MessageStatusChange.message_id == msg.id, MessageStatusChange.source == CHANNEL)
                             .order_by(MessageStatusChange.id.desc()).limit(1))
    if current is not None and RANK[status] <= RANK.get(current, -1):
        session.rollback()  # late or repeated
        return
    if status not in FINAL:
        session.add(MessageStatusChange(message_id=msg.id, status=status, source=CHANNEL, at=utcnow()))
        session.commit()
        return
    props: dict[str, Any] = {"provider_id": sid, "status": status}
    event_ids: list[int] = []
    if status in FAILED:
        msg.status = MessageStatus.FAILED.value
        msg.error = f"Twilio reports {status}" + (f" (error {error_code})" if error_code else "")
        props["error_code"] = error_code
        contact = session.get(Contact, msg.contact_id) if msg.contact_id else None
        if error_code == str(UNSUBSCRIBED) and contact is not None:
            event_ids = record_consent(session, [contact], ConsentStatus.REVOKED, f"{SOURCE}:{UNSUBSCRIBED}",
                                       "sms.opted_out", {"phone": contact.phone, "via": f"error {UNSUBSCRIBED}"})
    report = DeliveryStatus(channel=CHANNEL, status=FINAL[status], provider_id=sid, props=props,
                            detail=msg.error if status in FAILED else None)
    current_app.extensions["nudge.plugins"].record_status(report)  # commits
    hand_over(event_ids)
