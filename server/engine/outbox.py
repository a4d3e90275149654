"""Delivering outbox rows exactly once: claim, send, record."""
from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from ..models import Contact, Message, MessageStatus, utcnow
from ..sdk import ChannelError, OutboundMessage
from .render import render_message

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


def backoff(attempt: int, base: float = 30.0, cap: float = 6 * 3600.0) -> float:
    """Seconds to wait before retry *attempt* (1-based): exponential with full jitter."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


def _claim(session: Session, message_id: int) -> bool:
    claimed = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.PENDING.value)
        .values(status=MessageStatus.SENDING.value, claimed_at=utcnow(), attempts=Message.attempts + 1)
    ).rowcount
    session.commit()
    return bool(claimed)


def _finish(session: Session, msg: Message, **values: Any) -> None:
    session.execute(update(Message).where(Message.id == msg.id).values(**values))
    session.commit()


def deliver(session: Session, app: Flask, message_ids: list[int]) -> int:
    """Send each pending message of *message_ids* once, reusing channel connections.

    :return: how many were sent.
    """
    pm = app.extensions["nudge.plugins"]
    channels: dict[str, Any] = {}
    sent = 0
    try:
        for message_id in message_ids:
            if not _claim(session, message_id):
                continue  # another worker has it, or it is already done
            msg = session.get(Message, message_id)
            session.refresh(msg)
            contact = session.get(Contact, msg.contact_id) if msg.contact_id else None
            if msg.channel not in channels:
                channel = pm.channel(msg.channel, app.config)
                channels[msg.channel] = (channel, channel.batch())
                channels[msg.channel][1].__enter__()
            channel = channels[msg.channel][0]
            field = channel.address_field
            address = getattr(contact, field, None) if (contact and field) else None
            if not address:
                _finish(session, msg, status=MessageStatus.SUPPRESSED.value, error="no_address")
                continue
            subject, text, html = render_message(msg.template, contact=contact, data=msg.data)
            outbound = OutboundMessage(key=msg.key, channel=msg.channel, template=msg.template, to=address,
                                       subject=subject, text=text, html=html)
            try:
                result = channel.send(outbound)
            except ChannelError as exc:
                _record_failure(session, msg, exc)
                continue
            _finish(session, msg, status=MessageStatus.SENT.value, sent_at=utcnow(),
                    provider_id=result.provider_id, error=None)
            sent += 1
    finally:
        for _channel, ctx in channels.values():
            ctx.__exit__(None, None, None)
    return sent


def _record_failure(session: Session, msg: Message, exc: ChannelError) -> None:
    log.warning("send of %s failed (attempt %d): %s", msg.key, msg.attempts, exc.message)
    if exc.ambiguous:
        _finish(session, msg, status=MessageStatus.UNKNOWN.value, error=exc.message)
    elif exc.permanent or msg.attempts >= MAX_ATTEMPTS:
        _finish(session, msg, status=MessageStatus.FAILED.value, error=exc.message)
    else:
        delay = exc.retry_after or backoff(msg.attempts)
        _finish(session, msg, status=MessageStatus.PENDING.value, error=exc.message, claimed_at=None,
                next_attempt_at=utcnow() + timedelta(seconds=delay))
