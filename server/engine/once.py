"""Requests made once (an ``Idempotency-Key``): each answer stored with the events it answers, and given again.

The API (server.api.idempotency) describes a keyed request as a :class:`Once`; the ingest's group writer
(:mod:`.groups`) stores the new requests' events with the others', and their answers with one insert, all in the
group's transaction: an answer exists exactly when its events do. The keys of a group are looked up with one query
(:func:`earlier`); on SQLite's own ingest writer not even that: a key stored before fails the answers' insert (the
unique API key and key), the group is rolled back and stored through the session, which looks its keys up.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from ..models import IdempotencyRecord, utcnow
from .driver_sql import insert_many, insert_statement

#: how long an answer is given again
KEEP = timedelta(hours=24)
#: (event id, contact id) per item of a request, in order
Stored = list[tuple[int, int]]

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
    query = (
        f"SELECT 1 FROM {IdempotencyRecord.__tablename__} WHERE api_key_id IN ({', '.join('?' * len(ids))})"
        f" AND key IN ({', '.join('?' * len(names))}) LIMIT 1"
    )
    return cursor.execute(query, [*ids, *names]).fetchone() is not None


def outcomes(
    onces: Sequence[Once | None], stored: Sequence[Stored], insert_rows: Callable[[Any, list[dict[str, Any]]], Any]
) -> list[Stored | Answered]:
    """What each request got, which stored *stored*: that, or for one made once (its :class:`Once`; new keys,
    distinct) its answer, stored with one ``insert_rows(model, rows)`` for them all (what it returns is not used:
    see :func:`sqlite_records`); a key stored before, or meanwhile by another transaction, makes the insert fail
    (IntegrityError)."""
    made = [(once, done) for once, done in zip(onces, stored, strict=True) if once is not None]
    requests = [once for once, _done in made]
    answers = [Answer(once.status, once.answer(done)) for once, done in made]
    if requests:
        now = utcnow()
        insert_rows(
            IdempotencyRecord,
            [
                {
                    "api_key_id": once.api_key_id,
                    "key": once.key,
                    "endpoint": once.endpoint,
                    "request_hash": once.digest,
                    "status_code": answer.status,
                    "response": answer.payload,
                    "created_at": now,
                }
                for once, answer in zip(requests, answers, strict=True)
            ],
        )
    given = iter(answers)
    return [
        done if once is None else Answered(next(given), done, False) for once, done in zip(onces, stored, strict=True)
    ]


#: an answer's row, as :func:`outcomes` makes it: every column but the id
_COLUMNS = ("api_key_id", "key", "endpoint", "request_hash", "status_code", "response", "created_at")
#: per dialect: the INSERT of an answer's row and, per value in order, its column and its conversion for the driver
_layouts: weakref.WeakKeyDictionary[Any, tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]] = (
    weakref.WeakKeyDictionary()
)


def sqlite_records(cursor: Any, dialect: Any) -> Callable[[Any, list[dict[str, Any]]], None]:
    """``insert_rows(model, rows)`` for :func:`outcomes` through a DBAPI *cursor* (SQLite): the rows the ingest's
    own insert (:func:`~.driver_sql.insert_statement`) would insert, their values converted by the same bind
    processors, but without the generic per-column passes and without counting their ids back (two more statements):
    nothing reads an answer's id."""
    layout = _layouts.get(dialect)
    if layout is None:
        plan = insert_statement(_TABLE, _COLUMNS)
        if plan is None:
            raise ValueError(f"{_TABLE.name}: no prepared insert for its rows")
        sql, columns = plan.plan(dialect)
        if any(key is None for key, _convert, _constant, _make in columns):  # every value is a row's (_COLUMNS)
            raise ValueError(f"{_TABLE.name}: a value of its insert is not one of its rows'")
        layout = _layouts[dialect] = (sql, tuple((key, convert) for key, convert, _c, _m in columns if key))

    def insert(model: Any, rows: list[dict[str, Any]]) -> None:
        assert model.__table__ is _TABLE
        sql, columns = layout
        values = [tuple(convert(row[key]) if convert else row[key] for key, convert in columns) for row in rows]
        insert_many(cursor, sql, values)

    return insert


def session_records(session: Session) -> Callable[[Any, list[dict[str, Any]]], None]:
    """``insert_rows(model, rows)`` for :func:`outcomes` in *session*'s transaction (:func:`sqlite_records` on
    SQLite; elsewhere one INSERT of the rows, their ids not asked back)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return sqlite_records(connection.connection.cursor(), connection.dialect)

    def insert_rows(model: Any, rows: list[dict[str, Any]]) -> None:
        connection.execute(insert(model.__table__), rows)

    return insert_rows


__all__ = [
    "KEEP",
    "Answer",
    "Answered",
    "Once",
    "Reused",
    "Stored",
    "any_stored",
    "earlier",
    "outcomes",
    "session_records",
    "sqlite_records",
]
