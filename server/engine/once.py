"""Requests made once (an ``Idempotency-Key``): each answer stored with the events it answers, and given again.

The API (server.api.idempotency) describes a keyed request as a :class:`Once`; the ingest's group writer
(:mod:`.groups`) looks the keys of a group up with one query, stores the new requests' events with the others', and
their answers with one insert, all in the group's transaction: an answer exists exactly when its events do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from ..models import IdempotencyRecord, utcnow

#: how long an answer is given again
KEEP = timedelta(hours=24)
#: (event id, contact id) per item of a request, in order
Stored = list[tuple[int, int]]

_TABLE = IdempotencyRecord.__table__


#: built once (not per group of requests): the stored answers to some keys, of any API key
_EARLIER = select(
    _TABLE.c.id,
    _TABLE.c.api_key_id,
    _TABLE.c.key,
    _TABLE.c.endpoint,
    _TABLE.c.request_hash,
    _TABLE.c.status_code,
    _TABLE.c.response,
    _TABLE.c.created_at,
).where(_TABLE.c.key.in_(bindparam("keys", expanding=True)))


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
    keys = list({once.key for once in requests})
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not any_stored(connection.connection.cursor(), keys):
        return {}  # new keys, as a key nearly always is: asked straight through the driver (~5x faster)
    rows = connection.execute(_EARLIER, {"keys": keys})
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


def any_stored(cursor: Any, keys: list[str]) -> bool:
    """Whether an answer is stored for one of *keys* (of any API key), asked through a DBAPI *cursor* (SQLite)."""
    marks = ", ".join("?" * len(keys))
    query = f"SELECT 1 FROM {IdempotencyRecord.__tablename__} WHERE key IN ({marks}) LIMIT 1"
    return cursor.execute(query, keys).fetchone() is not None


def outcomes(
    onces: Sequence[Once | None], stored: Sequence[Stored], insert_rows: Callable[[Any, list[dict[str, Any]]], Any]
) -> list[Stored | Answered]:
    """What each request got, which stored *stored*: that, or for one made once (its :class:`Once`; new keys,
    distinct) its answer, stored with one ``insert_rows(model, rows)`` for them all; a key stored meanwhile by
    another transaction makes the insert fail (IntegrityError)."""
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


__all__ = ["KEEP", "Answer", "Answered", "Once", "Reused", "Stored", "any_stored", "earlier", "outcomes"]
