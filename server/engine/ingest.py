"""Recording events: upsert the contact, store the event, hand it to the queue."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Contact, Event, utcnow

IDENTITY_FIELDS = ("email", "external_id")


class IngestError(ValueError):
    """The event cannot be stored as given; ``field`` names the offending input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def upsert_contact(session: Session, spec: Mapping[str, Any]) -> Contact:
    """Find the contact by email or external id, creating it when new."""
    email = spec.get("email")
    external_id = spec.get("external_id")
    if not email and not external_id:
        raise IngestError("contact", "a contact needs an email or an external_id")
    contact = None
    if external_id:
        contact = session.scalar(select(Contact).where(Contact.external_id == str(external_id)))
    if contact is None and email:
        contact = session.scalar(select(Contact).where(Contact.email == email))
    if contact is None:
        contact = Contact(email=email, external_id=str(external_id) if external_id else None, fields={})
        session.add(contact)
    for name in ("first_name", "last_name", "phone", "timezone", "locale"):
        if spec.get(name) is not None:
            setattr(contact, name, spec[name])
    if email and not contact.email:
        contact.email = email
    contact.last_seen = utcnow()
    session.flush()
    return contact


def record_event(session: Session, contact: Contact, name: str, props: Mapping[str, Any] | None = None,
                 occurred_at: datetime | None = None, source: str = "api") -> Event:
    now = utcnow()
    event = Event(contact_id=contact.id, name=name, props=dict(props or {}), source=source,
                  occurred_at=occurred_at or now, received_at=now)
    session.add(event)
    session.flush()
    return event
