"""Storing events and opt-outs: the rows the engine's rules react to."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy.orm import Session

from ..consent import revoke
from ..models import Contact, Event, utcnow


def record_event(session: Session, contact: Contact, name: str, props: Mapping[str, Any] | None = None,
                 occurred_at: datetime | None = None, source: str = "api") -> Event:
    """Store one event of *contact*; the caller commits and enqueues ``process_events``."""
    now = utcnow()
    event = Event(contact_id=contact.id, name=name, props=dict(props or {}), source=source,
                  occurred_at=occurred_at or now, received_at=now)
    session.add(event)
    session.flush()
    return event


def opt_out(session: Session, contact: Contact, channel: str, source: str, *, ip: str | None = None,
            user_agent: str | None = None, props: Mapping[str, Any] | None = None) -> Event | None:
    """Revoke consent on *channel* and raise ``<channel>.unsubscribed``; nothing when already revoked.

    :return: the event to enqueue, or None when the contact had already opted out.
    """
    if not revoke(session, contact.id, channel, source, ip=ip, user_agent=user_agent):
        return None
    return record_event(session, contact, f"{channel}.unsubscribed",
                        {"channel": channel, "source": source, **(props or {})}, source="consent")
