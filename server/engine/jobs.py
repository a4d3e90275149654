"""RQ jobs. Each claims its rows in the database, so a job delivered twice does its work once."""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from ..db import get_session
from ..models import Contact, Event, Message, MessageStatus, utcnow
from ..queue import get_queue
from .outbox import deliver

log = logging.getLogger(__name__)

#: the fixed slice until the journey engine lands: event name -> (channel, template)
SLICE = {"form.submitted": ("email", "welcome")}


def process_events(event_ids: list[int]) -> int:
    """Match events against the rules and write the resulting outbox rows.

    :return: how many events this call processed (others were already done).
    """
    session = get_session()
    created: list[int] = []
    done = 0
    for event_id in event_ids:
        claimed = session.execute(
            update(Event).where(Event.id == event_id, Event.processed_at.is_(None)).values(processed_at=utcnow())
        ).rowcount
        if not claimed:
            session.rollback()
            continue
        event = session.get(Event, event_id)
        action = SLICE.get(event.name)
        if action is not None:
            channel, template = action
            msg = Message(key=f"event:{event.id}:{channel}:{template}", contact_id=event.contact_id,
                          channel=channel, template=template, data={"event": event.props})
            session.add(msg)
            session.flush()
            created.append(msg.id)
        session.commit()  # the claim and the outbox row land together, or neither does
        done += 1
    if created:
        get_queue().enqueue(deliver_messages, created)
    return done


def deliver_messages(message_ids: list[int]) -> int:
    """Send a batch of outbox rows; see :func:`server.engine.outbox.deliver`."""
    return deliver(get_session(), current_app, message_ids)


def requeue_due() -> dict[str, int]:
    """One scheduler tick: re-enqueue work the database says is due but may have been lost in Redis.

    :return: counts of what was enqueued or resolved.
    """
    session = get_session()
    config = current_app.config
    now = utcnow()
    stale = now - timedelta(seconds=config["REQUEUE_AFTER"])
    queue = get_queue()
    events = list(session.scalars(
        select(Event.id).where(Event.processed_at.is_(None), Event.received_at <= stale).limit(1000)))
    if events:
        queue.enqueue(process_events, events)
    due = list(session.scalars(
        select(Message.id).where(Message.status == MessageStatus.PENDING.value, Message.next_attempt_at <= now,
                                 (Message.claimed_at.is_(None)) | (Message.claimed_at <= stale)).limit(1000)))
    if due:
        session.execute(update(Message).where(Message.id.in_(due)).values(claimed_at=now))
    # a message claimed for sending whose worker vanished: the provider may have it; surface, never resend
    vanished = session.execute(
        update(Message).where(Message.status == MessageStatus.SENDING.value, Message.claimed_at <= stale)
        .values(status=MessageStatus.UNKNOWN.value, error="worker stopped while sending; check the provider")
    ).rowcount
    session.commit()
    if due:
        queue.enqueue(deliver_messages, due)
    return {"events": len(events), "messages": len(due), "unknown": vanished}


__all__ = ["Contact", "deliver_messages", "process_events", "requeue_due"]
