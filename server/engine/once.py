"""Requests made once (an ``Idempotency-Key``): each answer stored with the events it answers, and given again.

The API (server.api.idempotency) describes a keyed request as a :class:`Once`; the ingest's group writer
(:mod:`.groups`) stores the new requests' events with the others', and their answers with one insert, all in the
group's transaction: an answer exists exactly when its events do. The keys of a group are looked up with one query
(:func:`earlier`); on SQLite's own ingest writer not even that: a key stored before fails the answers' insert (the
unique API key and key), the group is rolled back and stored through the session, which looks its keys up.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from ..models import IdempotencyRecord, utcnow
from .driver_sql import insert_many, insert_statement

#: how long an answer is given again
KEEP = timedelta(hours=24)
#: (event id, contact id) per item of a request, in order
Stored = list[tuple[int, int]]
#: ``insert_rows(rows)``: stores answers' rows (tuples of :data:`_COLUMNS`' values) in the caller's transaction
Records = Callable[[list[tuple[Any, ...]]], None]

_TABLE = IdempotencyRecord.__table__


#: built once (not per group of requests): the stored answers to some keys of some API keys (any pair of the two:
#: the caller keeps the pairs it asked for). The API key's id is asked too, so that the unique index (api key, key)
#: finds them: no index starts with the key, and asked by the key alone the table was read whole (24 hours of keys)
_EARLIER = select(
    _TABLE.c.id,
    _TABLE.c.api_key_id,
    _TABLE.c.key,
    _TABLE.c.endpoint,
    _TABLE.c.request_hash,
    _TABLE.c.status_code,
    _TABLE.c.response,
    _TABLE.c.created_at,
).where(_TABLE.c.api_key_id.in_(bindparam("ids", expanding=True)), _TABLE.c.key.in_(bindparam("keys", expanding=True)))


class Once(NamedTuple):
    """A request with a key: whose key (``api_key_id``, ``key``), to what (``endpoint``, the body's ``digest``), and
    the answer (``status``, ``answer(stored)``'s JSON body) to store with what it stores."""

    api_key_id: int
    key: str
    endpoint: str
    digest: str
    status: int
    answer: Callable[[Stored], Any]


class Answer(NamedTuple):
    """An answer stored for a key: its status and its JSON body."""

    status: int
    payload: Any


class Answered(NamedTuple):
    """What a request made once got: its answer, what it stored now (nothing when the answer was given before), and
    whether it was."""

    answer: Answer
    stored: Stored
    replayed: bool


class Reused(Exception):
    """The key was used before for a different request (to *endpoint*, or with another body)."""

    def __init__(self, endpoint: str):
        super().__init__(endpoint)
        self.endpoint = endpoint


def earlier(session: Session, requests: Sequence[Once]) -> dict[tuple[int, str], Answer | Reused]:
    """The answers stored for the keys of *requests*, by (API key id, key); a key used for another request maps to
    :class:`Reused`. Expired answers are deleted (their keys are new again)."""
    if not requests:
        return {}
    wanted = {(once.api_key_id, once.key): once for once in requests}
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not any_stored(connection.connection.cursor(), wanted):
        return {}  # new keys, as a key nearly always is: asked straight through the driver (~5x faster)
    ids, keys = list({api_key_id for api_key_id, _key in wanted}), list({key for _id, key in wanted})
    rows = connection.execute(_EARLIER, {"ids": ids, "keys": keys})
    found: dict[tuple[int, str], Answer | Reused] = {}
    expired = []
    oldest = utcnow() - KEEP
    for row_id, api_key_id, key, endpoint, digest, status, payload, created_at in rows:
        once = wanted.get((api_key_id, key))
        if once is None:
            continue  # another API key's
        if created_at < oldest:
            expired.append(row_id)
        elif endpoint != once.endpoint or digest != once.digest:
            found[api_key_id, key] = Reused(endpoint)
        else:
            found[api_key_id, key] = Answer(status, payload)
    if expired:
        session.connection().execute(delete(_TABLE).where(_TABLE.c.id.in_(expired)))
    return found


def any_stored(cursor: Any, keys: Collection[tuple[int, str]]) -> bool:
    """Whether an answer may be stored for one of *keys* (API key id, key), asked through a DBAPI *cursor* (SQLite)
    by the unique index (api key, key), as :data:`_EARLIER` asks: an answer to a key of the group's other API key
    counts too (rarely: a group's requests nearly always come with one API key; the caller then asks exactly)."""
    ids = list({api_key_id for api_key_id, _key in keys})
    names = list({key for _id, key in keys})
    return cursor.execute(_any_stored_sql(len(ids), len(names)), [*ids, *names]).fetchone() is not None


@functools.lru_cache(maxsize=64)
def _any_stored_sql(ids: int, names: int) -> str:
    """:func:`any_stored`'s query for *ids* API key ids and *names* keys (made once a shape, not once a request)."""
    return (
        f"SELECT 1 FROM {IdempotencyRecord.__tablename__} WHERE api_key_id IN ({', '.join('?' * ids)})"
        f" AND key IN ({', '.join('?' * names)}) LIMIT 1"
    )


def outcomes(onces: Sequence[Once | None], stored: Sequence[Stored], insert_rows: Records) -> list[Stored | Answered]:
    """What each request got, which stored *stored*: that, or for one made once (its :class:`Once`; new keys,
    distinct) its answer, stored with one ``insert_rows(rows)`` for them all (:func:`sqlite_records`,
    :func:`session_records`); a key stored before, or meanwhile by another transaction, makes the insert fail
    (IntegrityError).

    One pass, the rows made as tuples in :data:`_COLUMNS`' order (no dict a row for the writer to take apart
    again) and one time for them all: this runs for every keyed post, in the write turn every process waits for.
    """
    results: list[Stored | Answered] = []
    rows: list[tuple[Any, ...]] = []
    now = None
    for once, done in zip(onces, stored, strict=True):
        if once is None:
            results.append(done)
            continue
        if now is None:
            now = utcnow()
        payload = once.answer(done)
        rows.append((once.api_key_id, once.key, once.endpoint, once.digest, once.status, payload, now))
        results.append(Answered(Answer(once.status, payload), done, False))
    if rows:
        insert_rows(rows)
    return results


#: an answer's row, as :func:`outcomes` makes it (a tuple, in this order): every column but the id
_COLUMNS = ("api_key_id", "key", "endpoint", "request_hash", "status_code", "response", "created_at")
#: per dialect: the INSERT of an answer's row and, per value that the driver takes converted, its place in a row
#: and its conversion (the others go in as they are)
_layouts: weakref.WeakKeyDictionary[Any, tuple[str, tuple[tuple[int, Callable[[Any], Any]], ...]]] = (
    weakref.WeakKeyDictionary()
)
#: no value yet (not None: a value may be None)
_NOTHING = object()


def sqlite_records(cursor: Any, dialect: Any) -> Records:
    """``insert_rows(rows)`` for :func:`outcomes` through a DBAPI *cursor* (SQLite): the rows the ingest's own
    insert (:func:`~.driver_sql.insert_statement`) would insert, their values converted by the same bind
    processors, but without the generic per-column passes and without counting their ids back (two more statements):
    nothing reads an answer's id."""
    layout = _layouts.get(dialect)
    if layout is None:
        layout = _layouts[dialect] = _sqlite_layout(dialect)
    sql, conversions = layout

    def insert(rows: list[tuple[Any, ...]]) -> None:
        values = [list(row) for row in rows]
        for i, convert in conversions:
            # a value the rows share (the time of the group's answers) is converted once, not once a row
            seen, converted = _NOTHING, None
            for row in values:
                value = row[i]
                if value is not seen:
                    seen, converted = value, convert(value)
                row[i] = converted
        if len(values) == 1:  # nearly always (a keyed post alone in its group): the statement as it is
            cursor.execute(sql, values[0])
        else:
            insert_many(cursor, sql, values)

    return insert


def _sqlite_layout(dialect: Any) -> tuple[str, tuple[tuple[int, Callable[[Any], Any]], ...]]:
    """The INSERT of an answer's row for *dialect*, and which of a row's values it takes converted, and how."""
    plan = insert_statement(_TABLE, _COLUMNS)
    if plan is None:
        raise ValueError(f"{_TABLE.name}: no prepared insert for its rows")
    sql, columns = plan.plan(dialect)
    keys = tuple(key for key, _convert, _constant, _make in columns)
    if keys != _COLUMNS:  # every value is a row's, in the rows' order: a row goes in as it is
        raise ValueError(f"{_TABLE.name}: its insert takes {keys}, not an answer's row {_COLUMNS}")
    return sql, tuple(
        (i, _utc_text(convert) if key == "created_at" else convert)
        for i, (key, convert, _c, _m) in enumerate(columns)
        if convert is not None
    )


def _utc_text(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """*convert* (a UTC time's text for SQLite, through the column type's two processors: ~3 µs), done directly for
    an aware UTC :class:`datetime` (what :func:`~server.models.utcnow` gives: ~1.5 µs); any other value goes through
    *convert* (which refuses a naive time). Used only when both agree on times from year 1 to 9999, with and without
    microseconds (``isoformat`` leaves out zero microseconds unless asked, the column's text never does)."""

    def text(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is UTC:
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return convert(value)

    samples = (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 3, 9, 46, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 9, 46, 0, 7, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    )
    return text if all(text(sample) == convert(sample) for sample in samples) else convert


def session_records(session: Session) -> Records:
    """``insert_rows(rows)`` for :func:`outcomes` in *session*'s transaction (:func:`sqlite_records` on SQLite;
    elsewhere one INSERT of the rows, their ids not asked back)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return sqlite_records(connection.connection.cursor(), connection.dialect)

    def insert_rows(rows: list[tuple[Any, ...]]) -> None:
        connection.execute(insert(_TABLE), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])

    return insert_rows


__all__ = [
    "KEEP",
    "Answer",
    "Answered",
    "Once",
    "Records",
    "Reused",
    "Stored",
    "any_stored",
    "earlier",
    "outcomes",
    "session_records",
    "sqlite_records",
]
