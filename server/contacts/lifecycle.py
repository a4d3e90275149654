"""Merging, erasing and exporting contacts: everything that touches every table holding contact data.

Tables are found through their foreign keys to ``contacts.id``, so a table added later (the
engine's enrolments) follows a merge, an erasure and an export without changes here. A table
that needs more than "move the rows" on merge — a unique (rule, contact) pair, say — registers
a handler with :func:`register_merge_handler`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    cast,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from ..consent import address_hash, suppress, suppression_reason
from ..db import affected_rows
from ..models import (
    AuditEntry,
    Base,
    Consent,
    Contact,
    ContactTag,
    Event,
    Message,
    MessageStatusChange,
    Note,
    Suppression,
    SuppressionReason,
    Task,
    utcnow,
)
from ..queue import get_queue
from .normalize import iso
from .service import audit, contact_dict

#: table name -> handler(session, into_id, from_id); called instead of moving the rows
MergeHandler = Callable[[Session, int, int], None]
_MERGE_HANDLERS: dict[str, MergeHandler] = {}


def register_merge_handler(table: str, handler: MergeHandler) -> None:
    """Let *table*'s rows be merged by *handler* instead of being moved to the surviving contact.

    For a table with a unique constraint involving the contact (one enrolment per rule and
    contact), the handler decides which row survives. It runs inside the merge's transaction.
    """
    _MERGE_HANDLERS[table] = handler


def address_channels(plugin_manager: Any) -> dict[str, tuple[str, ...]]:
    """Contact attribute → the installed channels addressed by it (their ``address_field``)."""
    out: dict[str, list[str]] = {}
    for name, cls in getattr(plugin_manager, "channels", {}).items():
        if cls.address_field:
            out.setdefault(cls.address_field, []).append(name)
    return {field: tuple(sorted(names)) for field, names in out.items()}


def _contact_references() -> Iterator[tuple[Table, Column[Any]]]:
    """Every (table, column) holding a contact id — a foreign key to ``contacts.id`` or a column
    named ``contact_id`` — in dependency order (parents first)."""
    for table in Base.metadata.sorted_tables:
        if table.name == "contacts":
            continue
        for column in table.columns:
            if column.name == "contact_id" or any(
                fk.column.table.name == "contacts" and fk.column.name == "id" for fk in column.foreign_keys
            ):
                yield table, column


def held_rows(session: Session, contact_id: int) -> dict[str, int]:
    """How many rows of each table hold the contact's id (what an erasure deletes; messages it keeps, blanked)."""
    counts: dict[str, int] = {}
    for table, column in _contact_references():
        found = session.scalar(select(func.count()).select_from(table).where(column == contact_id)) or 0
        counts[table.name] = counts.get(table.name, 0) + found
    return counts


def _unique_groups(table: Table, column: Column[Any]) -> list[list[Column[Any]]]:
    """The other columns of each unique key (constraint, index or primary key) that includes *column*."""
    groups = []
    keys = [list(c.columns) for c in table.constraints if isinstance(c, (UniqueConstraint, PrimaryKeyConstraint))]
    keys += [list(i.columns) for i in table.indexes if i.unique]
    for cols in keys:
        if any(c is column for c in cols):
            groups.append([c for c in cols if c is not column])
    return groups


def _move_rows(session: Session, table: Table, column: Column[Any], into_id: int, other_id: int) -> None:
    """Re-point *other_id*'s rows at *into_id*; where a unique key would clash, *into_id*'s row stays."""
    for others in _unique_groups(table, column):
        twin = table.alias("twin")
        clash = exists().where(twin.c[column.name] == into_id, *[twin.c[c.name] == table.c[c.name] for c in others])
        session.execute(delete(table).where(column == other_id, clash))
    session.execute(update(table).where(column == other_id).values({column.name: into_id}))


def merge_contacts(session: Session, into: Contact, other: Contact, *, actor: str) -> Contact:
    """Fold *other* into *into*: its events, consents, messages, notes, tasks, tags, enrolments and every
    other row holding its id move over (where a unique key clashes, *into*'s row is kept); empty
    attributes of *into* are filled from *other*; custom fields are combined (*into* wins); scores
    add up; *other* is deleted. Audited.
    """
    if into.id == other.id:
        raise ValueError("cannot merge a contact into itself")
    other_id = other.id
    taken = {"email": other.email, "external_id": other.external_id}
    fields = {**(other.fields or {}), **(into.fields or {})}
    filled = {
        name: getattr(other, name)
        for name in ("phone", "first_name", "last_name", "timezone", "locale", "stage")
        if getattr(into, name) is None and getattr(other, name) is not None
    }
    score = (into.score or 0) + (other.score or 0)
    created_at = min(into.created_at, other.created_at)
    last_seen = max((t for t in (into.last_seen, other.last_seen) if t is not None), default=None)
    session.flush()
    for table, column in _contact_references():
        handler = _MERGE_HANDLERS.get(table.name)
        if handler is not None:
            handler(session, into.id, other_id)
        else:
            _move_rows(session, table, column, into.id, other_id)
    session.expunge(other)
    session.execute(delete(Contact).where(Contact.id == other_id))  # frees its unique email / external id
    session.expire(into, ["tags"])
    for name, value in taken.items():
        if value and getattr(into, name) is None:
            setattr(into, name, value)
    for name, value in filled.items():
        setattr(into, name, value)
    into.fields, into.score, into.created_at, into.last_seen = fields, score, created_at, last_seen
    audit(session, actor, "contact.merged", "contact", into.id, merged_from=other_id)
    session.flush()
    return into


def _json_forms(value: str) -> set[str]:
    """How *value* reads inside stored JSON: SQLite keeps ``\\u`` escapes, PostgreSQL's JSONB does not."""
    return {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def _mentions(column: Any, contact: Contact) -> ColumnElement[bool]:
    """*column* (text or JSON) holds the contact's address, phone, external id, or a name as a whole value."""
    text = func.lower(cast(column, Text))
    inside = [v for v in (contact.email, contact.phone, contact.external_id) if v]
    names = [v for v in (contact.first_name, contact.last_name) if v and v.strip()]
    if len(names) == 2:
        inside.append(" ".join(names))
    clauses = [text.contains(form.lower(), autoescape=True) for value in inside for form in _json_forms(value)]
    clauses += [text.contains(f'"{form}"'.lower(), autoescape=True) for value in names for form in _json_forms(value)]
    return or_(*clauses) if clauses else false()


def _scrub_copies(session: Session, contact: Contact, digests: list[tuple[str, str]]) -> None:
    """Blank what other rows hold of the contact: suppression details of its addresses (a bounce diagnostic
    quotes the address) and audit details that hold its data."""
    own = [(Suppression.channel == channel) & (Suppression.address_hash == digest) for channel, digest in digests]
    session.execute(
        update(Suppression)
        .where(
            or_(*own, _mentions(Suppression.detail, contact)) if own else _mentions(Suppression.detail, contact),
            Suppression.reason != SuppressionReason.ERASED.value,
        )
        .values(detail=None)
    )
    session.execute(update(AuditEntry).where(_mentions(AuditEntry.detail, contact)).values(detail={}))


def erase_contact(
    session: Session, contact: Contact, *, secret: str, actor: str, channels: Mapping[str, tuple[str, ...]]
) -> dict[str, int]:
    """GDPR/CCPA erasure: delete the contact and every row about it; messages are kept for delivery
    statistics but lose their recipient, data and errors; status details and audit details about the
    contact are blanked, and so is every copy of its data elsewhere (suppression details, audit details, failed
    jobs' records in Redis that quote its addresses).
    Only a salted hash of each address stays, in the suppression list, so a re-import is created
    suppressed. Audited (with the contact id only).

    :param channels: contact attribute → the channels addressed by it (:func:`address_channels`).
    :return: counts of what was removed, for the audit entry and the caller.
    """
    contact_id = contact.id
    readable = [contact.external_id or "", *(str(getattr(contact, field, None) or "") for field in channels)]
    digests = []
    for field, names in channels.items():
        address = getattr(contact, field, None)
        if address:
            for channel in names:
                suppress(
                    session,
                    secret,
                    channel,
                    address,
                    SuppressionReason.ERASED.value,
                    detail="contact erased on request",
                )
                digests.append((channel, address_hash(secret, channel, address)))
    _scrub_copies(session, contact, digests)
    counts: dict[str, int] = {}
    message_ids = select(Message.id).where(Message.contact_id == contact_id)
    session.execute(
        update(MessageStatusChange).where(MessageStatusChange.message_id.in_(message_ids)).values(detail=None)
    )
    counts["messages"] = affected_rows(
        session.execute(
            update(Message).where(Message.contact_id == contact_id).values(contact_id=None, data={}, error=None)
        )
    )
    for table, column in reversed(list(_contact_references())):
        if table.name == Message.__tablename__:
            continue
        counts[table.name] = affected_rows(session.execute(delete(table).where(column == contact_id)))
    session.execute(
        update(AuditEntry)
        .where(AuditEntry.target_type == "contact", AuditEntry.target_id == str(contact_id))
        .values(detail={})
    )
    session.expunge(contact)
    session.execute(delete(Contact).where(Contact.id == contact_id))
    audit(session, actor, "contact.erased", "contact", contact_id, **{k: v for k, v in sorted(counts.items()) if v})
    session.flush()
    get_queue().forget_failed(readable)  # a crashed job's traceback may quote an address
    return counts


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _rows(session: Session, model: Any, *where: Any, order: Any = None) -> list[dict[str, Any]]:
    table = model.__table__
    query = select(table).where(*where)
    if order is not None:
        query = query.order_by(order)
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in session.execute(query)]


def export_contact(
    session: Session, contact: Contact, *, secret: str, channels: Mapping[str, tuple[str, ...]]
) -> dict[str, Any]:
    """Everything Nudge holds on *contact*, as JSON-ready data: attributes, tags, custom fields,
    consent ledger, suppressions of its addresses, events, messages with their status history,
    notes, tasks, audit entries, and rows of any other table that references the contact.

    :param channels: contact attribute → the channels addressed by it (:func:`address_channels`).
    """
    cid = contact.id
    messages = _rows(session, Message, Message.contact_id == cid, order=Message.id)
    for message in messages:
        message["status_history"] = _rows(
            session, MessageStatusChange, MessageStatusChange.message_id == message["id"], order=MessageStatusChange.id
        )
    suppressions = {}
    for field, names in channels.items():
        address = getattr(contact, field, None)
        for channel in names:
            reason = suppression_reason(session, secret, channel, address) if address else None
            if reason:
                suppressions[channel] = reason
    known = {
        Consent.__tablename__,
        Event.__tablename__,
        Message.__tablename__,
        Note.__tablename__,
        Task.__tablename__,
        ContactTag.__tablename__,
    }
    other: dict[str, list[dict[str, Any]]] = {}
    for table, column in _contact_references():
        if table.name not in known:
            rows = session.execute(select(table).where(column == cid))
            other[table.name] = [{k: _plain(v) for k, v in row._mapping.items()} for row in rows]
    return {
        "exported_at": iso(utcnow()),
        "contact": contact_dict(contact),
        "consents": _rows(session, Consent, Consent.contact_id == cid, order=Consent.id),
        "suppressions": suppressions,
        "events": _rows(session, Event, Event.contact_id == cid, order=Event.id),
        "messages": messages,
        "notes": _rows(session, Note, Note.contact_id == cid, order=Note.id),
        "tasks": _rows(session, Task, Task.contact_id == cid, order=Task.id),
        "audit": _rows(
            session,
            AuditEntry,
            AuditEntry.target_type == "contact",
            AuditEntry.target_id == str(cid),
            order=AuditEntry.id,
        ),
        "other": other,
    }
