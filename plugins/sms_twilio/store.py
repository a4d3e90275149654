"""What Twilio tells us, written down: status history, and opt-outs (error 21610) through the plugin API.

Used by this plugin's endpoints (and by the channel for error 21610); it runs inside the app context.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import select

from server.db import get_session
from server.models import Contact, Message, MessageStatus, MessageStatusChange, utcnow
from server.sdk import DeliveryStatus, record_consent, suppress

from .channel import CHANNEL, UNSUBSCRIBED
from .phone import normalise

log = logging.getLogger(__name__)

SOURCE = "twilio"

#: Twilio's message statuses in the order they can happen; the last rank holds the alternative endings.
#: ``failed`` is also what the status history says after an ``undelivered`` report.
RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
        "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4}
#: endings that raise an event: Twilio status -> event suffix (``sms.delivered``, ``sms.failed``)
FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
FAILED = {"undelivered", "failed"}
#: Twilio errors meaning the number can never get an SMS: unknown handset, landline or unreachable carrier
UNREACHABLE = {"30005", "30006"}


def record_provider_opt_out(phone: str) -> None:
    """Twilio refused a send with error 21610: the number replied STOP at some point, so write that down."""
    record_consent(CHANNEL, phone, False, source=f"{SOURCE}:{UNSUBSCRIBED}", event="sms.opted_out",
                   props={"phone": phone, "via": f"error {UNSUBSCRIBED}"})


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
    number = None
    if status in FAILED:
        msg.status = MessageStatus.FAILED.value
        msg.error = f"Twilio reports {status}" + (f" (error {error_code})" if error_code else "")
        props["error_code"] = error_code
        contact = session.get(Contact, msg.contact_id) if msg.contact_id else None
        number = _e164(contact.phone if contact is not None else None)
    report = DeliveryStatus(channel=CHANNEL, status=FINAL[status], provider_id=sid, props=props,
                            detail=msg.error if status in FAILED else None)
    current_app.extensions["nudge.plugins"].record_status(report)  # commits
    if number is not None and error_code == str(UNSUBSCRIBED):
        record_provider_opt_out(number)
    elif number is not None and error_code in UNREACHABLE:
        suppress(CHANNEL, number, "invalid_address", detail=f"Twilio error {error_code}")


def _e164(phone: str | None) -> str | None:
    try:
        return normalise(phone, current_app.config.get("SMS_DEFAULT_REGION")) if phone else None
    except ValueError:
        return None
