"""The API's events as rows for SQLite's driver: converted before the ingest's write turn (:func:`pack`) and
inserted in its turn in statements of many rows (:func:`insert_events`), their ids counted back (:func:`ids_back`)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from ..models import Event
from .driver_sql import insert_many, insert_statement


class _Checked(Protocol):
    """A checked API event (the ingest's own item)."""

    @property
    def name(self) -> str: ...

    @property
    def props(self) -> Any: ...

    @property
    def occurred_at(self) -> datetime | None: ...


class _Request(Protocol):
    """A request's checked events (:class:`.ingest.Prepared`)."""

    @property
    def checked(self) -> Sequence[_Checked] | None: ...

    @property
    def packed(self) -> Packed | None: ...


__all__ = ["EVENT_SOURCE", "Packed", "ids_back", "insert_events", "pack"]


class Packed(NamedTuple):
    """A request's events' values for the driver, per item in order (see :func:`pack`)."""

    #: the dialect they were converted for
    dialect: Any
    #: per item: its name, props and occurred_at as the driver takes them (occurred_at None: the time of the write)
    values: list[tuple[Any, Any, Any]]


#: the columns the API's events are inserted with (the others take their defaults)
_EVENT_KEYS = ("contact_id", "name", "props", "source", "occurred_at", "received_at")
#: the API's events' source
EVENT_SOURCE = "api"


def pack(dialect: Any, checked: Sequence[_Checked]) -> Packed:
    """*checked*'s name, props and occurred_at converted for *dialect*'s driver as the events' insert converts them
    (:func:`insert_events`): the JSON of the props and the time as text, made outside the write turn."""
    layout = _event_layout(dialect)
    name, props, occurred = layout.convert["name"], layout.convert["props"], layout.convert["occurred_at"]
    return Packed(
        dialect,
        [
            (name(item.name), props(item.props), None if item.occurred_at is None else occurred(item.occurred_at))
            for item in checked
        ],
    )


def _same(value: Any) -> Any:
    return value


class _EventLayout(NamedTuple):
    """The events' insert (:data:`_EVENT_KEYS`) for one dialect: the SQL of one row and how its values are made."""

    sql: str
    #: per key of :data:`_EVENT_KEYS`: its column's conversion for the driver
    convert: dict[str, Callable[[Any], Any]]
    #: the values of the columns left out (their scalar defaults), converted, after the keys' in the SQL
    constants: tuple[Any, ...]


_layouts: weakref.WeakKeyDictionary[Any, _EventLayout] = weakref.WeakKeyDictionary()


def _event_layout(dialect: Any) -> _EventLayout:
    found = _layouts.get(dialect)
    if found is None:
        plan = insert_statement(Event.__table__, _EVENT_KEYS)
        if plan is None:
            raise ValueError("events: no prepared insert")
        sql, columns = plan.plan(dialect)
        keys = [key for key, _convert, _constant, _make in columns]
        tail = columns[len(_EVENT_KEYS) :]
        if keys[: len(_EVENT_KEYS)] != list(_EVENT_KEYS) or any(
            key is not None or make is not None for key, _convert, _constant, make in tail
        ):  # the rows below put the keys first, then the constants
            raise ValueError(f"events: an insert laid out otherwise than expected: {sql}")
        found = _layouts[dialect] = _EventLayout(
            sql,
            {key: convert or _same for key, convert, _constant, _make in columns if key is not None},
            tuple((convert or _same)(constant) for _key, convert, constant, _make in tail),
        )
    return found


def insert_events(
    cursor: Any, dialect: Any, group: Sequence[_Request], contact_ids: list[int], now: datetime
) -> list[int]:
    """Insert *group*'s events (its requests' checked items, in order) for *contact_ids* through the DBAPI
    *cursor*: the rows :func:`.ingest._sqlite_insert` would insert, in statements of many rows
    (:func:`.driver_sql.insert_many`), their values converted before the turn where the requests were packed
    (:attr:`Prepared.packed`); their ids, in order."""
    layout = _event_layout(dialect)
    values = [
        value
        for prepared in group
        for value in (
            prepared.packed
            if prepared.packed is not None and prepared.packed.dialect is dialect
            else pack(dialect, prepared.checked or [])
        ).values
    ]
    source, received = layout.convert["source"](EVENT_SOURCE), layout.convert["received_at"](now)
    occurred_now, constants = layout.convert["occurred_at"](now), layout.constants
    rows = [
        (contact_id, name, props, source, occurred_now if occurred is None else occurred, received, *constants)
        for contact_id, (name, props, occurred) in zip(contact_ids, values, strict=True)
    ]
    insert_many(cursor, layout.sql, rows)
    return ids_back(cursor, Event.__table__, rows)


def ids_back(cursor: Any, table: Any, rows: Sequence[Any]) -> list[int]:
    """The ids of the *rows* just inserted, counted back from ``last_insert_rowid()`` (see :func:`_insert`)."""
    last = cursor.execute("SELECT last_insert_rowid()").fetchone()[0]
    first = last - len(rows) + 1
    stored = cursor.execute(
        f"SELECT count(*) FROM {table.name} WHERE id BETWEEN ? AND ?",
        (first, last),
    ).fetchone()[0]
    if stored != len(rows):  # cannot happen while ids are never reused; refuse rather than answer wrong ids
        raise RuntimeError(f"{table.name}: {len(rows)} rows inserted but ids {first}..{last} hold {stored}")
    return list(range(first, last + 1))
