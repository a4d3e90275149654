"""Storing events and opt-outs: the rows the engine's rules react to."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..consent import revoke
from ..models import Contact, Event, utcnow


def record_event(
    session: Session,
    contact: Contact,
    name: str,
    props: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
    source: str = "api",
) -> Event:
    """Store one event of *contact*; the caller commits and enqueues ``process_events``."""
    now = utcnow()
    event = Event(
        contact_id=contact.id,
        name=name,
        props=dict(props or {}),
        source=source,
        occurred_at=occurred_at or now,
        received_at=now,
    )
    session.add(event)
    session.flush()
    return event


def opt_out(
    session: Session,
    contact: Contact,
    channel: str,
    source: str,
    *,
    event: str,
    ip: str | None = None,
    user_agent: str | None = None,
    props: Mapping[str, Any] | None = None,
) -> Event | None:
    """Revoke consent on *channel* and raise *event* (the channel's opt-out event); nothing when already revoked.

    :param event: ``Channel.opt_out_event_name()`` of the channel (``email.unsubscribed``, ``sms.opted_out``); see
        ``PluginManager.opt_out_event``.
    :return: the event to enqueue, or None when the contact had already opted out.
    """
    if not revoke(session, contact.id, channel, source, ip=ip, user_agent=user_agent):
        return None
    return record_event(
        session, contact, event, {"channel": channel, "source": source, **(props or {})}, source="consent"
    )


def announce_changes(
    session: Session,
    contact: Contact,
    *,
    created: bool,
    changed: Collection[str] = (),
    tags_before: set[str] | None = None,
    source: str = "api",
) -> list[Event]:
    """Record the events a change to *contact* made outside the engine means for the rules.

    ``contact.created``, or ``contact.updated`` with the *changed* field names (the engine re-plans date
    triggers from them; none when nothing changed: writing the values a contact has is no update), plus
    ``tag.added`` / ``tag.removed`` per tag. The caller commits, then hands the
    events' ids to the engine (``server.engine.wake.enqueue_events``).
    """
    events = []
    if created:
        events.append(record_event(session, contact, "contact.created", {}, source=source))
    elif changed:
        events.append(record_event(session, contact, "contact.updated", {"fields": sorted(changed)}, source=source))
    if tags_before is not None:
        now = {t.tag for t in contact.tags}
        events += [
            record_event(session, contact, "tag.added", {"tag": tag}, source=source)
            for tag in sorted(now - tags_before)
        ]
        events += [
            record_event(session, contact, "tag.removed", {"tag": tag}, source=source)
            for tag in sorted(tags_before - now)
        ]
    return events
