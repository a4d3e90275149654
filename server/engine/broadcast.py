"""Broadcasts: one message to every member of a segment, through the same outbox as journeys.

Each member gets one outbox row keyed ``broadcast:<id>:<contact>``, so a broadcast sent twice with the
same id (a retried API call, a re-run command) reaches nobody twice; consent, suppression and the
frequency cap are checked for each row at the moment it is sent, like every other message.

A segment whose condition has an SQL form (nearly every one) becomes its outbox rows in one
``INSERT … SELECT`` that skips the members who already have their row; a condition only the evaluator can
decide is walked contact by contact and written in batches.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.orm import Session

from ..models import Contact, Message, utcnow
from .keys import BROADCAST, key_prefix, message_key

#: rows per INSERT when the members are found by the evaluator
BATCH = 1000


class BroadcastError(ValueError):
    """The broadcast cannot be made as asked; the message says what to fix."""


@dataclass
class Broadcast:
    id: str
    members: int
    message_ids: list[int]


def create_broadcast(
    session: Session,
    plugins,
    channel: str,
    template: str,
    segment: str,
    broadcast_id: str | None = None,
    send_at: datetime | None = None,
) -> Broadcast:
    """Write the outbox rows for every current member of *segment* (the caller commits, then enqueues).

    :param send_at: when the rows become due (a scheduled broadcast: the scheduler hands them to the send queue
        then, and the caller enqueues nothing); default now.

    :return: the broadcast: its id, its members (those written now and those written by an earlier run with the
        same id) and the ids of its rows still pending, to hand to the send queue.
    """
    from ..contacts.errors import InvalidInput
    from ..models import Segment
    from ..segments import compile_condition, members_clause
    from ..sqlwhere import Unsupported

    if channel not in plugins.channels:
        raise BroadcastError(f"no channel {channel!r}; installed: {', '.join(sorted(plugins.channels))}")
    from .vocabulary import instance_vocabulary

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
    earlier = rows_of(session, ident)
    written = session.scalar(select(func.count(Message.id)).where(earlier)) or 0
    pending = list(session.scalars(select(Message.id).where(earlier, Message.status == "pending")))
    constants = {
        "channel": channel,
        "template": template,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": send_at or now,
        "created_at": now,
        "data": {"broadcast": ident, "marketing": True},
    }
    try:
        clause = members_clause(session, tree, now)
    except Unsupported:
        done = set(session.scalars(select(Message.contact_id).where(earlier)))
        new = _write_evaluated(session, tree, now, ident, constants, done)
    else:
        new = _write_selected(session, clause, ident, constants)
    return Broadcast(ident, len(new) + written, sorted(pending + new))


def rows_of(session: Session, ident: str) -> Any:
    """The rows of broadcast *ident*, exactly: SQLite's ``LIKE`` ignores case and ``_`` matches any character."""
    prefix = key_prefix(BROADCAST, ident)
    exact = func.substr(Message.key, 1, len(prefix)) == prefix
    if session.get_bind().dialect.name == "sqlite":  # binary collation: the key's index finds the range
        return exact & (Message.key >= prefix) & (Message.key < prefix[:-1] + chr(ord(":") + 1))
    return exact


def cancel_broadcast(session: Session, ident: str, actor: str) -> int:
    """Withdraw the rows of broadcast *ident* that no sender has claimed yet: they become ``cancelled`` and are
    never sent. Rows being sent or already done keep their status, so nothing sent is rewritten and nothing is
    sent twice (a sender's claim and this update both change only ``pending`` rows). Audited as
    ``broadcast.cancelled`` by *actor* when anything was withdrawn. The caller commits.

    :return: how many messages were withdrawn.
    """
    from ..contacts import audit

    result = session.execute(
        update(Message)
        .where(rows_of(session, ident), Message.status == "pending")
        .values(status="cancelled", error="the broadcast was cancelled before this message was sent")
        .execution_options(synchronize_session=False)
    )
    withdrawn = int(getattr(result, "rowcount", 0) or 0)
    if withdrawn:
        audit(session, actor, "broadcast.cancelled", "broadcast", ident, messages=withdrawn)
    return withdrawn


def broadcast_exists(session: Session, ident: str) -> bool:
    """Whether broadcast *ident* has any message in the outbox (a broadcast is its messages)."""
    return session.scalar(select(Message.id).where(rows_of(session, ident)).limit(1)) is not None


def _write_selected(session: Session, clause: Any, ident: str, constants: dict[str, Any]) -> list[int]:
    """One ``INSERT … SELECT`` of the members matching *clause* who have no row yet; the new rows' ids."""
    table = Message.__table__
    done = table.alias("done")
    key = message_key(BROADCAST, ident, Contact.id)
    rows = (
        select(key, Contact.id, *(literal(value, table.c[name].type) for name, value in constants.items()))
        .where(clause, ~select(done.c.id).where(done.c.key == key).exists())
        .order_by(Contact.id)
    )
    stmt = insert(table).from_select(["key", "contact_id", *constants], rows).returning(table.c.id)
    result = session.connection().execute(stmt)
    # the ids straight from the driver's cursor: a Row object per member costs a sixth of a million-row broadcast
    ids = [row[0] for row in result.cursor.fetchall()]
    result.close()
    return ids


def _write_evaluated(
    session: Session, tree: Any, now: datetime, ident: str, constants: dict[str, Any], done: set[int | None]
) -> list[int]:
    """The rows of the members the evaluator finds, in batches; the new rows' ids."""
    from ..segments import iter_members
    from .scope import Scope

    table = Message.__table__
    ids: list[int] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        ids.extend(session.connection().execute(insert(table).returning(table.c.id), batch).scalars())
        batch.clear()

    for contact in iter_members(session, tree, now, scope=Scope.of):
        if contact.id not in done:
            batch.append({"key": message_key(BROADCAST, ident, contact.id), "contact_id": contact.id, **constants})
            if len(batch) >= BATCH:
                flush()
    if batch:
        flush()
    return ids


def enqueue_broadcast(broadcast: Broadcast, batch: int = 500) -> None:
    """Hand the rows to the send queue in batches of *batch* ids, all in one Redis round trip (after the commit
    that stored them; if Redis is away, the scheduler finds the due rows in the database)."""
    from ..queue import get_queue
    from .jobs import deliver_messages

    ids = broadcast.message_ids
    get_queue().enqueue_many(deliver_messages, [(ids[i : i + batch],) for i in range(0, len(ids), batch)], send=True)
