"""Who may be messaged: the consent ledger and the suppression list, read and written in one place.

Whether a message may go out is the send-time policy's call (:mod:`server.engine.policy`), asked right
before each send, so an opt-out recorded while a message waits in the outbox still stops it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import affected_rows
from .models import Consent, ConsentStatus, Suppression, utcnow
from .sdk import address_hash as _sdk_address_hash
from .sdk import redact

#: suppression reasons a confirmed double opt-in lifts: the person asked again and proved the address is
#: theirs. Bounces and complaints stay (a confirmation is never mailed to those addresses).
LIFTED_BY_CONFIRMATION = ("erased", "unsubscribed")


def address_hash(secret: str, channel: str, address: str) -> str:
    """Salted SHA-256 of a normalised address: recognisable after erasure, yet no personal data.

    The same digest channels write through :func:`server.sdk.address_hash` (the channel is its own
    column of the suppression list, so it is not part of the digest).
    """
    return _sdk_address_hash(address, secret)


def latest_consent(contact_id: Any, channel: str) -> Select[str]:
    """The statement reading the latest ledger status on *channel* of *contact_id* — an id, or a column such as
    ``Contact.id`` to correlate it as a subquery over many contacts."""
    return (
        select(Consent.status)
        .where(Consent.contact_id == contact_id, Consent.channel == channel)
        .order_by(Consent.recorded_at.desc(), Consent.id.desc())
        .limit(1)
    )


def current_consent(session: Session, contact_id: int, channel: str) -> str | None:
    """The latest ledger status for the contact on *channel* (``granted``/``revoked``), or None."""
    return session.scalar(latest_consent(contact_id, channel))


def current_consents(session: Session, contact_id: int) -> dict[str, str]:
    """channel → latest status, for every channel the ledger has a row for."""
    out: dict[str, str] = {}
    rows = session.execute(
        select(Consent.channel, Consent.status)
        .where(Consent.contact_id == contact_id)
        .order_by(Consent.recorded_at, Consent.id)
    )
    for channel, status in rows:
        out[channel] = status
    return out


def record_consent(
    session: Session,
    contact_id: int,
    channel: str,
    granted: bool,
    source: str,
    *,
    at: datetime | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    wording: str | None = None,
) -> Consent:
    row = Consent(
        contact_id=contact_id,
        channel=channel,
        status=(ConsentStatus.GRANTED if granted else ConsentStatus.REVOKED).value,
        source=source,
        recorded_at=at or utcnow(),
        ip=ip,
        user_agent=(user_agent or None) and user_agent[:512],
        wording=wording,
    )
    session.add(row)
    session.flush()
    return row


def revoke(
    session: Session,
    contact_id: int,
    channel: str,
    source: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Record an opt-out unless the latest ledger row already is one.

    :return: True when a revocation was recorded (raise ``<channel>.unsubscribed`` then), False when it
        was already revoked — so a repeated one-click POST does nothing twice.
    """
    if current_consent(session, contact_id, channel) == ConsentStatus.REVOKED.value:
        return False
    record_consent(session, contact_id, channel, False, source, ip=ip, user_agent=user_agent)
    return True


def suppression_reason(session: Session, secret: str, channel: str, address: str) -> str | None:
    return session.scalar(
        select(Suppression.reason).where(
            Suppression.channel == channel, Suppression.address_hash == address_hash(secret, channel, address)
        )
    )


def suppress(session: Session, secret: str, channel: str, address: str, reason: str, detail: str | None = None) -> None:
    """Add *address* to the suppression list (idempotent, also under concurrent writers).

    :param detail: why, for operators (a bounce diagnostic …); the address, and any other address or
        phone number in it, is masked: the list keeps only a hash of the address, and nothing readable.
    """
    digest = address_hash(secret, channel, address)
    if detail:
        detail = redact(re.sub(re.escape(address.strip()), "[address]", detail, flags=re.IGNORECASE))
    exists = session.scalar(
        select(Suppression.id).where(Suppression.channel == channel, Suppression.address_hash == digest)
    )
    if exists is None:
        try:
            with session.begin_nested():
                session.add(Suppression(channel=channel, address_hash=digest, reason=reason, detail=detail))
        except IntegrityError:
            pass


def lift_suppression(
    session: Session, channel: str, digest: str, reasons: tuple[str, ...] = LIFTED_BY_CONFIRMATION
) -> bool:
    """Take the address with hash *digest* off the suppression list of *channel* when its reason is one of
    *reasons*; return whether it was. Only a confirmed double opt-in calls this."""
    return bool(
        affected_rows(
            session.execute(
                delete(Suppression).where(
                    Suppression.channel == channel, Suppression.address_hash == digest, Suppression.reason.in_(reasons)
                )
            )
        )
    )
