"""Recording events: upsert the contact, store the event (one, or a batch set-wise); the caller enqueues their
processing."""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Engine, event, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from ..contacts.errors import InvalidInput
from ..contacts.events import record_event
from ..contacts.normalize import check_json, flat_json_texts, parse_datetime
from ..contacts.service import CONTACT_KEYS, clean_contact, clean_value
from ..contacts.service import upsert_contact as _upsert
from ..models import Contact, Event, utcnow
from ..sdk import lone_surrogate
from .driver_sql import DriverStatement, insert_many, insert_statement
from .ingest_rows import EVENT_SOURCE, Packed, ids_back, insert_events, pack
from .once import Answered, Once, Stored, outcomes, sqlite_records
from .wal_checkpoints import WRITER_AUTOCHECKPOINT, WalCheckpointer

IDENTITY_FIELDS = ("email", "external_id")
_IDENTITY_KEYS = frozenset(IDENTITY_FIELDS)
__all__ = [
    "IDENTITY_FIELDS",
    "IngestError",
    "NotAdmitted",
    "Prepared",
    "admitted_as",
    "engine_turn",
    "insert_rows",
    "names_fields",
    "per_request",
    "prepare_events",
    "record_event",
    "store_events",
    "store_plain",
    "store_plain_apart",
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
    #: ``admit(cursor, engine)``: the id of the request's API key when it may store, else None, asked in the
    #: write's own transaction through its DBAPI cursor (the key, looked up where the write happens); refused:
    #: :class:`NotAdmitted`. A request made once whose :attr:`Once.api_key_id` is 0 takes that id.
    admit: Callable[[Any, Engine], int | None] | None = None
    #: the checked items' event values as the SQLite driver takes them, made before the write turn
    #: (:func:`prepare_events` given a SQLite *engine*); None: :func:`store_plain_apart` makes them in its turn
    packed: Packed | None = None
    #: the request is made once (it carries an Idempotency-Key): stored with its answer, or given that answer again
    once: Once | None = None


class NotAdmitted(Exception):
    """The request's :attr:`Prepared.admit` refused it in the write's transaction: nothing of it was stored."""


def prepare_events(
    session: Session | None,
    items: Sequence[Mapping[str, Any]],
    *,
    region: str | None = None,
    prefix: Callable[[int], str],
    engine: Engine | None = None,
) -> Prepared:
    """Check and normalise API events (``{"contact", "event", "props", "occurred_at"}``) before storing them.

    :param session: reads the custom field definitions; may be None when no item's contact gives ``fields``
        (:func:`names_fields`).
    :param prefix: how errors name item *i* (``events[3].``).
    :param engine: the engine that will store them: on SQLite their values are also converted for the driver here,
        outside the write turn (:attr:`Prepared.packed`).
    """
    checked = _usual_items(items)
    if checked is None:
        try:
            checked = [_prepare(session, item, prefix(i), region) for i, item in enumerate(items)]
        except InvalidInput:
            checked = None
    packed = None
    if checked is not None and engine is not None and engine.dialect.name == "sqlite":
        packed = pack(engine.dialect, checked)
    return Prepared(items, checked, region, prefix, packed=packed)


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
    return _store_plain(
        checked,
        lambda key, wanted: _find_contacts(session, key, wanted),
        lambda model, rows: insert_rows(session, model, rows),
    )


def _store_plain(
    checked: list[_Item],
    find: Callable[[str, set[str]], Iterable[Sequence[Any]]],
    insert_rows: Callable[[Any, list[dict[str, Any]]], list[int]],
    insert_events: Callable[[list[int], datetime], list[int]] | None = None,
) -> list[tuple[int, int]] | None:
    """:func:`store_plain` with its reads and writes given: *insert_events* ``(contact ids, now)`` inserts the
    items' events (their ids back) where given, else *insert_rows* does, given the events' rows."""
    if not checked:
        return []
    contact_ids = _plain_contacts(checked, find, insert_rows)
    if contact_ids is None:
        return None
    now = utcnow()
    if insert_events is not None:
        return list(zip(insert_events(contact_ids, now), contact_ids, strict=True))
    rows = [
        {
            "contact_id": contact_id,
            "name": item.name,
            "props": item.props,
            "source": EVENT_SOURCE,
            "occurred_at": item.occurred_at or now,
            "received_at": now,
        }
        for item, contact_id in zip(checked, contact_ids, strict=True)
    ]
    event_ids = insert_rows(Event, rows)
    return list(zip(event_ids, contact_ids, strict=True))


def store_plain_apart(
    engine: Engine | Connection, group: Sequence[Prepared]
) -> list[Stored | Answered | BaseException] | None:
    """Store a group of requests' events set-wise on SQLite, in one transaction of its own on the ingest's own
    connection, committed; the caller holds the write turn (:func:`write_turn`). Each request is first admitted
    (:attr:`Prepared.admit`) in that transaction; a refused one gets :class:`NotAdmitted` and stores nothing. The
    answers of the requests made once (:attr:`Prepared.once`) are stored with them (:func:`~.once.outcomes`).

    None (and nothing written) when an event or a contact is not plain, on another database or on an error, or when
    a key of a request made once was stored before (its answer's insert fails) or comes twice (to be answered from
    it): the caller then stores through its session, which says what is wrong, or gives the answer again.

    The connection is this process's one ingest writer: its page cache stays valid from one group to the next (a
    connection from the pool finds it reset by the other connections' commits, and reads its pages again), and no
    session, pool or ORM transaction is set up per group. The events' values were converted before the turn where
    the requests were packed (:func:`prepare_events` given the engine), and the rows go in as statements of many
    rows each: the writer, holding the turn of every process, gives up the GIL once a statement, not once a row.
    """
    found = _writer(engine) if isinstance(engine, Engine) else None
    if found is None or any(prepared.checked is None for prepared in group):
        return None
    assert isinstance(engine, Engine)
    writer, checkpoints = found
    cursor = writer.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    try:
        admitted = [admitted_as(prepared, cursor, engine) for prepared in group]
        taken = [prepared for prepared in admitted if prepared is not None]
        keyed = [once for prepared in taken if (once := prepared.once) is not None]
        if len({(once.api_key_id, once.key) for once in keyed}) < len(keyed):
            cursor.execute("ROLLBACK")
            return None

        def insert(model: Any, rows: list[dict[str, Any]]) -> list[int]:
            return _sqlite_insert(cursor, engine.dialect, model.__table__, rows, many=True)

        stored = _store_plain(
            [item for prepared in taken for item in prepared.checked or ()],
            lambda key, wanted: _sqlite_find(cursor, key, wanted),
            insert,
            lambda contact_ids, now: insert_events(cursor, engine.dialect, taken, contact_ids, now),
        )
        if stored is None:
            cursor.execute("ROLLBACK")
            return None
        # a key stored before (or expired, to be deleted) fails the answers' insert (the unique key): all rolled back
        records = sqlite_records(cursor, engine.dialect)  # no look-up first: a key is nearly always new
        got = iter(outcomes([prepared.once for prepared in taken], per_request(taken, stored), records))
        cursor.execute("COMMIT")
    except Exception:  # a clash with another process's insert, say: the session's path says what each request meets
        writer.rollback()
        return None
    checkpoints.stored(len(stored))
    return [NotAdmitted() if prepared is None else next(got) for prepared in admitted]


def admitted_as(prepared: Prepared, cursor: Any, engine: Engine) -> Prepared | None:
    """*prepared* when its request may store (:attr:`Prepared.admit`, asked through *cursor*), made once under its
    API key's id when it learns that id only now (the lean path's requests); None when it may not."""
    if prepared.admit is None:
        return prepared
    key_id = prepared.admit(cursor, engine)
    if not key_id:
        return None
    once = prepared.once
    if once is not None and not once.api_key_id:
        return prepared._replace(once=once._replace(api_key_id=key_id))
    return prepared


def per_request(group: Sequence[Prepared], stored: Stored) -> list[Stored]:
    """The (event id, contact id) pairs of a group's events stored together, cut back into each request's."""
    out, start = [], 0
    for prepared in group:
        out.append(stored[start : start + len(prepared.items)])
        start += len(prepared.items)
    return out


#: per engine: its ingest writer (a DBAPI connection apart from the pool) and the thread checkpointing what it
#: writes (:mod:`.wal_checkpoints`), closed when the engine is disposed of
_writers: weakref.WeakKeyDictionary[Any, tuple[Any, WalCheckpointer]] = weakref.WeakKeyDictionary()


def _writer(engine: Engine) -> tuple[Any, WalCheckpointer] | None:
    """The ingest's own DBAPI connection to *engine*'s SQLite file and its checkpointer; None for another database
    or an in-memory one."""
    if engine.dialect.name != "sqlite" or isinstance(engine.pool, StaticPool):
        return None
    found = _writers.get(engine)
    if found is None:
        writer = _detached(engine)
        writer.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT}")  # the thread checkpoints before
        writer.execute("PRAGMA temp_store=MEMORY")  # the statement journals of its inserts of many rows
        found = _writers[engine] = (writer, WalCheckpointer(_detached(engine)))
        event.listen(engine, "engine_disposed", lambda _engine: _close_writer(engine))
    return found


def _detached(engine: Engine) -> Any:
    """A DBAPI connection of *engine* (its pragmas applied: WAL, foreign keys, busy timeout), apart from its pool."""
    fairy = engine.raw_connection()
    connection = fairy.driver_connection
    fairy.detach()  # not returned to the pool: kept by this process's ingest
    return connection


def _close_writer(engine: Engine) -> None:
    found = _writers.pop(engine, None)
    if found is not None:
        writer, checkpoints = found
        checkpoints.close()
        writer.close()


@contextmanager
def write_turn(session: Session) -> Iterator[None]:
    """Hold this process's turn to write while the block runs its transaction (SQLite; PostgreSQL writes at once).

    SQLite has one writer: a thread that finds the database locked polls for it with growing sleeps (its busy
    handler), so under load most of a request's time was spent asleep. Here the threads of one process queue on a
    lock and the next starts the moment the last commits. The transaction begins inside the turn (any open one is
    committed first: it would hold the database's lock while waiting for the turn), and a failed block is rolled
    back before the turn passes on.
    """
    if session.in_transaction():
        session.commit()
    with engine_turn(session.get_bind()):
        try:
            yield
        except BaseException:
            session.rollback()
            raise


@contextmanager
def engine_turn(engine: Any) -> Iterator[None]:
    """The turn :func:`write_turn` takes, for a write that needs no session (on the ingest's own connection).

    Shared with the other web processes on the same SQLite file (``NUDGE_WEB_PROCESSES``) through an exclusive
    ``flock`` of a file beside it (``<database>-write.lock``; the kernel releases it when a process dies): the next
    writer of any process starts the moment the last commits, where SQLite's busy handler slept 1, 2, 5 … ms
    between tries.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    with _write_locks.setdefault(engine, threading.Lock()):
        fd = _lock_file(engine)
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


_write_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
#: per engine: (process id, descriptor) of its lock file, opened by each process for itself (a ``flock`` belongs to
#: the open file, which a forked child would share with its parent)
_lock_files: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()


def _lock_file(engine: Any) -> int | None:
    """The descriptor of *engine*'s write lock file (held in its write turn); None for an in-memory database."""
    found = _lock_files.get(engine)
    if found is not None and found[0] == os.getpid():
        return found[1]
    database = engine.url.database
    if not database or database == ":memory:" or isinstance(engine.pool, StaticPool):
        return None
    fd = os.open(f"{database}-write.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    _lock_files[engine] = (os.getpid(), fd)
    weakref.finalize(engine, os.close, fd)
    return fd


def names_fields(items: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an item's contact gives custom ``fields`` (their definitions are then read: a session is needed)."""
    for item in items:
        contact = item.get("contact")
        if (type(contact) is dict or isinstance(contact, Mapping)) and contact.get("fields") is not None:
            return True
    return False


def _prepare(session: Session | None, item: Mapping[str, Any], prefix: str, region: str | None) -> _Item:
    props = check_json(item.get("props", {}), f"{prefix}props")
    occurred_at = parse_datetime(item["occurred_at"], f"{prefix}occurred_at") if item.get("occurred_at") else None
    given = {k: v for k, v in item["contact"].items() if v is not None}
    if session is None and given.get("fields") is not None:
        raise ValueError("prepare_events: custom fields given without a session to read their definitions")
    cleaned = _known_identity(given)
    if cleaned is None:
        cleaned = clean_contact(cast(Session, session), given, prefix=f"{prefix}contact.", region=region)
    return _Item(cleaned, item["event"], dict(props or {}), occurred_at)


def _usual_items(items: Sequence[Mapping[str, Any]]) -> list[_Item] | None:
    """*items* checked as :func:`_prepare` checks them, when every one is the usual event: its contact named only by
    an email and/or an external id (as text), its props a flat object of text, numbers, booleans and nulls; None
    otherwise, or when one is invalid (:func:`_prepare` then checks each, and names what is wrong).

    The same outcome as :func:`_prepare` (tests/engine/test_ingest_usual.py), made without a field name or a
    recursive call per value (~1.5 µs of :func:`check_json` an event): the props' keys and texts of the whole
    request are checked for a NUL or a lone surrogate at once, in one string.
    """
    checked: list[_Item] = []
    texts: list[str] = []
    for item in items:
        contact, props, occurred = item.get("contact"), item.get("props", _NO_PROPS), item.get("occurred_at")
        if type(contact) is not dict or type(props) is not dict:
            return None
        cleaned = _known_identity(contact)
        if cleaned is None:
            return None
        if not flat_json_texts(props, texts):
            return None  # nested, or not JSON: check_json decides
        try:
            when = parse_datetime(occurred, "occurred_at") if occurred else None
        except InvalidInput:
            return None
        checked.append(_Item(cleaned, item["event"], dict(props), when))
    joined = "".join(texts)
    if "\x00" in joined or lone_surrogate(joined):
        return None
    return checked


_NO_PROPS: dict[str, Any] = {}


def _known_identity(given: dict[str, Any]) -> dict[str, Any] | None:
    """*given* cleaned as :func:`clean_contact` cleans it, when it names its contact only by an email and/or an
    external id given as text (the usual event); None otherwise, or when one is invalid (:func:`clean_contact`
    then says why, naming the field). A key given as null is left out, as if not given."""
    cleaned = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in IDENTITY_FIELDS or type(value) is not str:
            return None
        try:
            cleaned[key] = _identity(key, value)
        except InvalidInput:
            return None
    return cleaned or None


@functools.lru_cache(maxsize=32768)
def _identity(key: str, value: str) -> str:
    """An email or external id as :func:`clean_value` cleans it, a pure function of the text: a contact seen
    again, in the same batch or a later one, skips the checks (~4 µs an event)."""
    return cast(str, clean_value(key, value, key))


def _store_one(session: Session, item: Mapping[str, Any], prefix: str, region: str | None) -> tuple[int, int]:
    props = check_json(item.get("props", {}), f"{prefix}props")
    occurred_at = parse_datetime(item["occurred_at"], f"{prefix}occurred_at") if item.get("occurred_at") else None
    contact = upsert_contact(session, item["contact"], region=region, strict=True, prefix=f"{prefix}contact.")
    event = record_event(session, contact, item["event"], props, occurred_at=occurred_at)
    return event.id, event.contact_id


def _plain_contacts(
    items: list[_Item],
    find: Callable[[str, set[str]], Iterable[Sequence[Any]]],
    insert_rows: Callable[[Any, list[dict[str, Any]]], list[int]],
) -> list[int] | None:
    """The contact id of each item when every one is plain (see :func:`store_events`), creating the new ones;
    None (and nothing written) otherwise."""
    if any(not item.cleaned or not _IDENTITY_KEYS.issuperset(item.cleaned) for item in items):
        return None
    by_email: dict[str, int] = {}
    by_external: dict[str, int] = {}
    emails: dict[int, str | None] = {}
    for key, by_value in (("email", by_email), ("external_id", by_external)):
        wanted = {value for item in items if (value := item.cleaned.get(key))}
        if not wanted:
            continue
        for ident, email, value in find(key, wanted):
            by_value[value] = ident
            emails[ident] = email
    planned: list[dict[str, Any]] = []  # new contacts, found again by later items through a negative stand-in id
    chosen: list[int] = []
    for item in items:
        email, external_id = item.cleaned.get("email"), item.cleaned.get("external_id")
        ident = by_external.get(external_id) if external_id else None
        if ident is not None:
            if email and emails[ident] != email:
                return None  # the email would move to this contact (or clash): the one-by-one path decides
        elif email and (ident := by_email.get(email)) is not None:
            if external_id:
                return None  # the external id would be attached to the contact found by email
        else:
            planned.append({"email": email, "external_id": external_id, "fields": {}, "score": 0})
            ident = -len(planned)
            emails[ident] = email
            if email:
                by_email[email] = ident
            if external_id:
                by_external[external_id] = ident
        chosen.append(ident)
    if planned:
        new_ids = insert_rows(Contact, planned)
        chosen = [new_ids[-ident - 1] if ident < 0 else ident for ident in chosen]
    return chosen


def _find_contacts(session: Session, key: str, wanted: set[str]) -> Iterable[Sequence[Any]]:
    """(id, email, *key* value) of the contacts whose *key* (email or external id) is one of *wanted*.

    On SQLite straight through the driver's cursor, in the session's transaction (the values are plain strings
    and so are the results: nothing for SQLAlchemy to convert); elsewhere as a Core statement.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        column = getattr(Contact, key)
        return connection.execute(select(Contact.id, Contact.email, column).where(column.in_(wanted))).all()
    return _sqlite_find(connection.connection.cursor(), key, wanted)


def _sqlite_find(cursor: Any, key: str, wanted: set[str]) -> Iterable[Sequence[Any]]:
    marks = ", ".join("?" * len(wanted))
    return cursor.execute(
        f"SELECT id, email, {key} FROM {Contact.__tablename__} WHERE {key} IN ({marks})", tuple(wanted)
    )


def insert_rows(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert *rows* (the columns' Python defaults apply); their new ids, in order.

    On SQLite, one prepared statement run per row (``executemany``) through the driver's cursor (the statement and
    its value conversions prepared once: :func:`.driver_sql.insert_statement`), and the ids counted back from
    ``last_insert_rowid()``: the tables never reuse ids (``AUTOINCREMENT``) and the transaction holds the write lock,
    so each row takes the next id. SQLAlchemy's ordered ``RETURNING`` would run one statement per row there.
    """
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(connection.execute(statement, rows).scalars())
    plan = _uniform_plan(table, rows)
    if plan is None:
        connection.execute(insert(table), rows)
        return ids_back(connection.connection.cursor(), table, rows)
    return _sqlite_insert(connection.connection.cursor(), connection.dialect, table, rows, plan)


def _uniform_plan(table: Any, rows: list[dict[str, Any]]) -> DriverStatement | None:
    """The prepared insert of *rows* when they all have the same keys and it has one."""
    plan = insert_statement(table, tuple(rows[0]))
    first = rows[0].keys()
    if plan is not None and all(row.keys() == first for row in rows):
        return plan
    return None


def _sqlite_insert(
    cursor: Any,
    dialect: Any,
    table: Any,
    rows: list[dict[str, Any]],
    plan: DriverStatement | None = None,
    *,
    many: bool = False,
) -> list[int]:
    """Insert *rows* with their prepared statement through the DBAPI *cursor*; their ids, in order.

    :param many: in statements of many rows (:func:`.driver_sql.insert_many`; the ingest's writer, whose temporary
        files are in memory) instead of one ``executemany``.
    :raises ValueError: when the rows have no prepared statement (see :func:`_uniform_plan`).
    """
    plan = plan or _uniform_plan(table, rows)
    if plan is None:
        raise ValueError(f"{table.name}: no prepared insert for these rows")
    if many:
        insert_many(cursor, plan.plan(dialect)[0], plan.values(dialect, rows))
    else:
        plan.executemany(cursor, dialect, rows)
    return ids_back(cursor, table, rows)
