"""The outbox: every outbound message, keyed so it is sent at most once."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, JsonType, UTCDateTime, utcnow


class MessageStatus(str, enum.Enum):
    PENDING = "pending"  # waiting to be claimed
    SENDING = "sending"  # claimed by a worker; outcome not yet recorded (``sending_at``: handed to the channel)
    SENT = "sent"
    FAILED = "failed"  # permanent failure, or retries exhausted
    UNKNOWN = "unknown"  # the provider may or may not have it: surfaced, never blindly resent
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"  # withdrawn before a sender claimed it (a cancelled broadcast): never sent


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_due", "status", "next_attempt_at"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: unique idempotency key: (enrolment, step, occurrence) for journeys, event id for the smoke slice
    key: Mapped[str] = mapped_column(String(255), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: committed just before the channel is called: a ``sending`` row without it was never handed over
    #: (its worker died first) and is sent again; one with it may have reached the provider
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChannelHealth(Base):
    """One row per channel: its last error and last success, for ``/healthz``."""

    __tablename__ = "channel_health"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the last error, without addresses or numbers
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: refreshed at most once a minute while sends succeed, and at once after an error
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: failed tries since the last success, a recipient's bounce included (a server refusing every
    #: recipient bounces them all); a success sets it back to 0
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
