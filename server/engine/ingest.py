"""Recording events: upsert the contact, store the event (one, or a batch set-wise); the caller enqueues their
processing."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ..contacts.errors import InvalidInput
from ..contacts.events import record_event
from ..contacts.normalize import check_json, parse_datetime
from ..contacts.service import CONTACT_KEYS, clean_contact
from ..contacts.service import upsert_contact as _upsert
from ..models import Contact, Event, utcnow

IDENTITY_FIELDS = ("email", "external_id")
__all__ = [
    "IDENTITY_FIELDS",
    "IngestError",
    "Prepared",
    "prepare_events",
    "record_event",
    "store_events",
    "store_plain",
    "upsert_contact",
    "write_turn",
]

#: kept for callers that catch ``IngestError``: the event cannot be stored as given; ``field`` names the input
IngestError = InvalidInput


def upsert_contact(
    session: Session,
    spec: Mapping[str, Any],
    *,
    region: str | None = None,
    strict: bool = False,
    prefix: str = "contact.",
) -> Contact:
    """Find the contact by external id or email, creating it when new.

    The engine moves its ``last_seen`` when it processes the event (:func:`server.engine.dispatch.mark_seen`).

    :param spec: contact attributes (``email``, ``external_id``, ``first_name`` …, ``fields``, ``tags``);
        ``None`` values are ignored; unknown keys are ignored unless *strict*.
    :param prefix: how errors name the object (``events[3].contact.``).
    :raises InvalidInput: for an invalid value, naming it as ``<prefix><name>``.
    """
    given = {k: v for k, v in spec.items() if v is not None and (strict or k in CONTACT_KEYS)}
    cleaned = clean_contact(session, given, prefix=prefix, region=region)
    contact, _created = _upsert(session, cleaned, prefix=prefix)
    session.flush()
    return contact


class _Item(NamedTuple):
    cleaned: dict[str, Any]
    name: str
    props: Any
    occurred_at: datetime | None


class Prepared(NamedTuple):
    """API events checked outside any transaction (:func:`prepare_events`), ready for :func:`store_events`."""

    items: Sequence[Mapping[str, Any]]
    #: the checked items; None when one is invalid (the one-by-one path then names the first error)
    checked: list[_Item] | None
    region: str | None
    prefix: Callable[[int], str]


def prepare_events(
    session: Session, items: Sequence[Mapping[str, Any]], *, region: str | None = None, prefix: Callable[[int], str]
) -> Prepared:
    """Check and normalise API events (``{"contact", "event", "props", "occurred_at"}``) before storing them.

    :param prefix: how errors name item *i* (``events[3].``).
    """
    try:
        checked = [_prepare(session, item, prefix(i), region) for i, item in enumerate(items)]
    except InvalidInput:
        checked = None
    return Prepared(items, checked, region, prefix)


def store_events(session: Session, prepared: Prepared) -> list[tuple[int, int]]:
    """Store prepared events, all or none; the caller commits.

    Set-wise when every contact is named only by its email or external id and each names one contact plainly
    (found, or new): one query per identity kind, one insert for the new contacts, one for the events. Any other
    batch (more attributes to write, an identity to attach, an invalid item) goes event by event through
    :func:`upsert_contact` and :func:`record_event`, which say what is wrong, as before.

    :return: (event id, contact id) per item, in order.
    :raises InvalidInput: naming the first offending field.
    """
    stored = store_plain(session, prepared.checked) if prepared.checked is not None else None
    if stored is None:
        region, prefix = prepared.region, prepared.prefix
        return [_store_one(session, item, prefix(i), region) for i, item in enumerate(prepared.items)]
    return stored


def store_plain(session: Session, checked: list[_Item]) -> list[tuple[int, int]] | None:
    """Store checked events set-wise when their contacts are plain (see :func:`store_events`); None (and nothing
    written) when one is not."""
    contact_ids = _plain_contacts(session, checked)
    if contact_ids is None:
        return None
    now = utcnow()
    rows = [
        {
            "contact_id": contact_id,
            "name": item.name,
            "props": item.props,
            "source": "api",
            "occurred_at": item.occurred_at or now,
            "received_at": now,
        }
        for item, contact_id in zip(checked, contact_ids, strict=True)
    ]
    event_ids = _insert(session, Event, rows)
    return list(zip(event_ids, contact_ids, strict=True))


@contextmanager
def write_turn(session: Session) -> Iterator[None]:
    """Hold this process's turn to write while the block runs its transaction (SQLite; PostgreSQL writes at once).

    SQLite has one writer: a thread that finds the database locked polls for it with growing sleeps (its busy
    handler), so under load most of a request's time was spent asleep. Here the threads of one process queue on a
    lock and the next starts the moment the last commits. The transaction begins inside the turn (any open one is
    committed first: it would hold the database's lock while waiting for the turn), and a failed block is rolled
    back before the turn passes on.
    """
    session.commit()
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    lock = _write_locks.setdefault(session.get_bind(), threading.Lock())
    with lock:
        try:
            yield
        except BaseException:
            session.rollback()
            raise


_write_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


def _prepare(session: Session, item: Mapping[str, Any], prefix: str, region: str | None) -> _Item:
    props = check_json(item.get("props", {}), f"{prefix}props")
    occurred_at = parse_datetime(item["occurred_at"], f"{prefix}occurred_at") if item.get("occurred_at") else None
    given = {k: v for k, v in item["contact"].items() if v is not None}
    cleaned = clean_contact(session, given, prefix=f"{prefix}contact.", region=region)
    return _Item(cleaned, item["event"], dict(props or {}), occurred_at)


def _store_one(session: Session, item: Mapping[str, Any], prefix: str, region: str | None) -> tuple[int, int]:
    props = check_json(item.get("props", {}), f"{prefix}props")
    occurred_at = parse_datetime(item["occurred_at"], f"{prefix}occurred_at") if item.get("occurred_at") else None
    contact = upsert_contact(session, item["contact"], region=region, strict=True, prefix=f"{prefix}contact.")
    event = record_event(session, contact, item["event"], props, occurred_at=occurred_at)
    return event.id, event.contact_id


def _plain_contacts(session: Session, items: list[_Item]) -> list[int] | None:
    """The contact id of each item when every one is plain (see :func:`store_events`), creating the new ones;
    None (and nothing written) otherwise."""
    if any(not item.cleaned or set(item.cleaned) - set(IDENTITY_FIELDS) for item in items):
        return None
    by_key: dict[str, dict[str, int]] = {key: {} for key in IDENTITY_FIELDS}
    emails: dict[int, str | None] = {}
    for key in IDENTITY_FIELDS:
        wanted = {item.cleaned[key] for item in items if item.cleaned.get(key)}
        if not wanted:
            continue
        column = getattr(Contact, key)
        for ident, email, value in session.connection().execute(
            select(Contact.id, Contact.email, column).where(column.in_(wanted))
        ):
            by_key[key][value] = ident
            emails[ident] = email
    planned: list[dict[str, Any]] = []  # new contacts, found again by later items through a negative stand-in id
    chosen: list[int] = []
    for item in items:
        email, external_id = item.cleaned.get("email"), item.cleaned.get("external_id")
        ident = by_key["external_id"].get(external_id) if external_id else None
        if ident is not None:
            if email and emails[ident] != email:
                return None  # the email would move to this contact (or clash): the one-by-one path decides
        elif email and (ident := by_key["email"].get(email)) is not None:
            if external_id:
                return None  # the external id would be attached to the contact found by email
        else:
            planned.append({"email": email, "external_id": external_id, "fields": {}, "score": 0})
            ident = -len(planned)
            emails[ident] = email
            for key, value in (("email", email), ("external_id", external_id)):
                if value:
                    by_key[key][value] = ident
        chosen.append(ident)
    if planned:
        new_ids = _insert(session, Contact, planned)
        chosen = [new_ids[-ident - 1] if ident < 0 else ident for ident in chosen]
    return chosen


def _insert(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert *rows* (Core: the columns' Python defaults apply); their new ids, in order.

    On SQLite, one prepared statement run per row (``executemany``) and the ids counted back from
    ``last_insert_rowid()``: the tables never reuse ids (``AUTOINCREMENT``) and the transaction holds the write lock,
    so each row takes the next id. SQLAlchemy's ordered ``RETURNING`` would run one statement per row there.
    """
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(connection.execute(statement, rows).scalars())
    connection.execute(insert(table), rows)
    last = connection.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
    first = last - len(rows) + 1
    stored = connection.execute(select(func.count()).where(table.c.id.between(first, last))).scalar_one()
    if stored != len(rows):  # cannot happen while ids are never reused; refuse rather than answer wrong ids
        raise RuntimeError(f"{table.name}: {len(rows)} rows inserted but ids {first}..{last} hold {stored}")
    return list(range(first, last + 1))
