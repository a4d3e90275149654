"""Who may be messaged: the consent ledger and the suppression list, read and written in one place."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Consent, ConsentStatus, Suppression, utcnow


def address_hash(secret: str, channel: str, address: str) -> str:
    """Salted SHA-256 of a normalised address: recognisable after erasure, yet no personal data."""
    normalised = address.strip().lower()
    return hmac.new(secret.encode(), f"{channel}:{normalised}".encode(), hashlib.sha256).hexdigest()


def current_consent(session: Session, contact_id: int, channel: str) -> str | None:
    """The latest ledger status for the contact on *channel* (``granted``/``revoked``), or None."""
    return session.scalar(
        select(Consent.status)
        .where(Consent.contact_id == contact_id, Consent.channel == channel)
        .order_by(Consent.recorded_at.desc(), Consent.id.desc())
        .limit(1)
    )


def record_consent(session: Session, contact_id: int, channel: str, granted: bool, source: str, *,
                   at: datetime | None = None, ip: str | None = None, user_agent: str | None = None,
                   wording: str | None = None) -> Consent:
    row = Consent(contact_id=contact_id, channel=channel,
                  status=(ConsentStatus.GRANTED if granted else ConsentStatus.REVOKED).value,
                  source=source, recorded_at=at or utcnow(), ip=ip, user_agent=user_agent, wording=wording)
    session.add(row)
    session.flush()
    return row


def suppression_reason(session: Session, secret: str, channel: str, address: str) -> str | None:
    return session.scalar(select(Suppression.reason).where(
        Suppression.channel == channel, Suppression.address_hash == address_hash(secret, channel, address)))


def suppress(session: Session, secret: str, channel: str, address: str, reason: str, detail: str | None = None) -> None:
    """Add *address* to the suppression list (idempotent)."""
    digest = address_hash(secret, channel, address)
    exists = session.scalar(select(Suppression.id).where(Suppression.channel == channel,
                                                         Suppression.address_hash == digest))
    if exists is None:
        session.add(Suppression(channel=channel, address_hash=digest, reason=reason, detail=detail))
        session.flush()
