"""Events: what contacts did, as received by the API or raised by Nudge itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, JsonType, UTCDateTime, utcnow

#: the rows of the pending-events index on PostgreSQL (migration 0042)
PENDING_ROWS = "processed_at IS NULL"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_contact_name_time", "contact_id", "name", "occurred_at"),
        # the pending events, for the claims, the sweep, health and the stuck list. On PostgreSQL only those: a claim
        # then adds no entry for the row it rewrites, nor does a raised event (stored processed); SQLite keeps
        # every event's entry, as a partial index cost its ingest as many pages (README, "Performance")
        Index("ix_events_unprocessed", "processed_at", "received_at", postgresql_where=text(PENDING_ROWS)),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    props: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    source: Mapped[str] = mapped_column(String(32), default="api")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: set once the engine has matched the event against the rules; NULL = still to do
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: failed tries so far: an event whose journeys fail stays unprocessed and is retried with back-off
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    #: not to be tried again before this time (back-off after a failure)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: why the last try failed (no personal data: addresses and numbers are blanked)
    error: Mapped[str | None] = mapped_column(Text)
    #: set after ``MAX_ATTEMPTS`` failed tries: left for an operator (``nudge messages``), never tried on its own
    parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProviderReceipt(Base):
    """A provider's report already handled (an incoming SMS by its ``MessageSid``): a replay of it changes nothing."""

    __tablename__ = "provider_receipts"
    __table_args__ = (UniqueConstraint("channel", "receipt"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    receipt: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
