"""Message templates and webhook endpoints: what rules send, stored per instance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, JsonType, UTCDateTime, utcnow


class Template(Base):
    """One template of a channel: ``parts`` maps part name (subject, html, txt) to Jinja source."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("channel", "name"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    parts: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookEndpoint(Base):
    """An outbound webhook destination (``send webhook NAME``)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: ``whsec_…`` secrets; all sign every call, so a rotation has no gap
    secrets: Mapped[list[str]] = mapped_column(JsonType, default=list)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundSource(Base):
    """An inbound webhook source: its own URL and secret, mapping JSON payloads to events."""

    __tablename__ = "inbound_sources"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    secret: Mapped[str] = mapped_column(String(255))
    #: how payload fields map to the event: {"event": "type", "email": "data.email", "props": "data"}
    mapping: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageStatusChange(Base):
    """Status history of an outbox message (sent, delivered, bounced …), from workers and provider callbacks."""

    __tablename__ = "message_status_changes"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(1024))
    source: Mapped[str] = mapped_column(String(64), default="worker")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
