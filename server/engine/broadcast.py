"""Broadcasts: one message to every member of a segment, through the same outbox as journeys.

Each member gets one outbox row keyed ``broadcast:<id>:<contact>``, so a broadcast sent twice with the
same id (a retried API call, a re-run command) reaches nobody twice; consent, suppression and the
frequency cap are checked for each row at the moment it is sent, like every other message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..models import Message, utcnow
from .keys import BROADCAST, key_prefix, message_key


class BroadcastError(ValueError):
    """The broadcast cannot be made as asked; the message says what to fix."""


@dataclass
class Broadcast:
    id: str
    members: int
    message_ids: list[int]


def create_broadcast(
    session: Session, plugins, channel: str, template: str, segment: str, broadcast_id: str | None = None
) -> Broadcast:
    """Write the outbox rows for every current member of *segment* (the caller commits, then enqueues)."""
    from ..contacts.errors import InvalidInput
    from ..models import Segment
    from ..segments import compile_condition, iter_members
    from .scope import Scope
    from .vocabulary import instance_vocabulary

    if channel not in plugins.channels:
        raise BroadcastError(f"no channel {channel!r}; installed: {', '.join(sorted(plugins.channels))}")
    known = instance_vocabulary(session, plugins).channels.get(channel)
    if known is not None and template not in known:
        raise BroadcastError(f"no {channel} template {template!r}; create it first (nudge apply or the API)")
    text = session.scalar(select(Segment.condition).where(Segment.name == segment))
    if text is None:
        raise BroadcastError(f"no segment named {segment!r}")
    try:  # counted by the database, as when the segment was saved: refused if it no longer can be
        tree = compile_condition(session, text).tree
    except InvalidInput as exc:
        raise BroadcastError(f"segment {segment!r} cannot be used for a broadcast: {exc.message}") from None
    ident = broadcast_id or secrets.token_hex(6)
    now = utcnow()
    prefix = key_prefix(BROADCAST, ident)
    done = set(session.scalars(select(Message.contact_id).where(Message.key.like(prefix + "%"))))
    rows = [
        {
            "key": message_key(BROADCAST, ident, contact.id),
            "contact_id": contact.id,
            "channel": channel,
            "template": template,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "data": {"broadcast": ident, "marketing": True},
        }
        for contact in iter_members(session, tree, scope=Scope.of)
        if contact.id not in done
    ]
    if rows:
        session.execute(insert(Message.__table__), rows)
    ids = list(
        session.scalars(
            select(Message.id).where(Message.key.like(prefix + "%"), Message.status == "pending").order_by(Message.id)
        )
    )
    return Broadcast(ident, len(rows) + len(done), ids)


def enqueue_broadcast(broadcast: Broadcast, batch: int = 500) -> None:
    """Hand the rows to the send queue in batches (after the commit that stored them)."""
    from ..queue import get_queue
    from .jobs import deliver_messages

    for start in range(0, len(broadcast.message_ids), batch):
        get_queue().enqueue_send(deliver_messages, broadcast.message_ids[start : start + batch])
