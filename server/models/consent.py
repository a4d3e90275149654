"""Consent and suppression: who may be messaged, on which channel, and why not."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, UTCDateTime, utcnow


class ConsentStatus(str, enum.Enum):
    GRANTED = "granted"
    REVOKED = "revoked"


class Consent(Base):
    """The consent ledger: append-only; a contact's current consent per channel is its latest row."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_contact_channel_at", "contact_id", "channel", "recorded_at"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    #: where it came from: "form:newsletter", "sms:STOP", "api", "import", "unsubscribe-link", …
    source: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    wording: Mapped[str | None] = mapped_column(Text)  # the text (or its version) the contact agreed to


class SuppressionReason(str, enum.Enum):
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    INVALID = "invalid_address"
    UNSUBSCRIBED = "unsubscribed"
    ERASED = "erased"


class Suppression(Base):
    """Addresses that must not be messaged, whatever the contact record says.

    ``address_hash`` is a salted SHA-256 of the normalised address, so an erased
    contact leaves no personal data but a re-import is still recognised.
    """

    __tablename__ = "suppressions"
    __table_args__ = (Index("ix_suppressions_lookup", "channel", "address_hash", unique=True), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    address_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
