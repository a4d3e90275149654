"""Statements run for many rows at once through SQLite's driver, compiled once: the send path's rounds and the
ingest's inserts.

Through SQLAlchemy an ``executemany`` of a few rows costs more CPU than SQLite takes to run it (the statement's
cache key, its parameters processed row by row). :class:`DriverStatement` compiles its statement once per dialect,
converts each value as SQLAlchemy would (the column types' bind processors; a value repeated across the rows, the
request's time say, converted once) and runs ``executemany`` on the driver's cursor. Other databases go through
SQLAlchemy as before. :func:`insert_statement` makes one for an INSERT of given columns with the other columns'
Python defaults added, as SQLAlchemy adds them.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine

from ..contacts.rowset import statement_rows
from ..db import POLL_WRITE_LOCK, begin_polling

__all__ = ["MANY_ROWS", "DriverStatement", "KeptWrites", "insert_many", "insert_statement"]

#: per parameter of the SQL, in order: the row's key (None: not from the row), the bind processor, the constant
#: (a literal of the statement, or a column's scalar default), the function called for each row (a default's)
_Column = tuple[str | None, Callable[[Any], Any] | None, Any, Callable[[], Any] | None]
_Plan = tuple[str, tuple[_Column, ...]]


class DriverStatement:
    """An UPDATE or INSERT run for many parameter sets at once.

    :param statement: the statement, with a bind parameter (or a column, for an INSERT) for each key of a row.
    :param keys: an INSERT's columns, all given in every row.
    :param defaults: an INSERT's columns not in the rows, with their constant value.
    :param makers: an INSERT's columns not in the rows, with the function making each row's value.
    """

    def __init__(
        self,
        statement: Any,
        keys: Sequence[str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        makers: Mapping[str, Callable[[], Any]] | None = None,
    ):
        self.statement = statement
        self.keys = list(keys) if keys is not None else None
        self.defaults = dict(defaults or {})
        self.makers = dict(makers or {})
        #: per dialect (one per engine; weak: an engine disposed of takes its plan along)
        self._plans: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()

    def plan(self, dialect: Any) -> _Plan:
        """The SQL for *dialect* and, per parameter, where its value comes from (see :data:`_Column`)."""
        plan = self._plans.get(dialect)
        if plan is None:
            column_keys = None if self.keys is None else [*self.keys, *self.defaults, *self.makers]
            compiled = self.statement.compile(dialect=dialect, column_keys=column_keys)
            columns: list[_Column] = []
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if name in self.makers:
                    columns.append((None, convert, None, self.makers[name]))
                elif name in self.defaults:
                    columns.append((None, convert, self.defaults[name], None))
                elif bind.required:  # a value of each row
                    columns.append((name, convert, None, None))
                else:  # a constant of the statement (``status == 'sending'``)
                    columns.append((None, convert, bind.value, None))
            plan = self._plans[dialect] = (str(compiled), tuple(columns))
        return plan

    def values(self, dialect: Any, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """The driver's parameters for *rows*, column by column."""
        columns: list[Sequence[Any]] = []
        for key, convert, constant, make in self.plan(dialect)[1]:
            if make is not None:  # a new public id, the time: one each, as SQLAlchemy calls it per row
                made = [make() for _row in rows]
                columns.append([convert(value) for value in made] if convert else made)
            elif key is None:
                columns.append([convert(constant) if convert else constant] * len(rows))
            else:
                given = [row[key] for row in rows]
                columns.append(_converted(convert, given) if convert else given)
        return list(zip(*columns, strict=True))

    def executemany(self, cursor: Any, dialect: Any, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run for each of *rows* on the SQLite driver's *cursor*; how many rows it changed in all."""
        cursor.executemany(self.plan(dialect)[0], self.values(dialect, rows))
        return int(cursor.rowcount)

    def run(self, connection: Connection, rows: list[dict[str, Any]]) -> int:
        """Execute for each of *rows* in the connection's transaction; return how many rows it changed in all
        (-1 where the driver cannot say, see ``supports_sane_multi_rowcount``)."""
        if connection.dialect.name != "sqlite":
            result = connection.execute(self.statement, rows)
            return result.rowcount if connection.dialect.supports_sane_multi_rowcount or len(rows) == 1 else -1
        cursor = connection.connection.cursor()
        try:
            return self.executemany(cursor, connection.dialect, rows)
        finally:
            cursor.close()


#: the most rows :func:`insert_many` puts in one statement
MANY_ROWS = 256


def insert_many(cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run the INSERT *sql* of one row (``… VALUES (?, …)``) for each of *rows* on the SQLite driver's *cursor*
    as statements of many rows each (``VALUES (…), (…), …``), in order: their ids follow one another as with
    ``executemany``.

    The driver releases the GIL and takes it back once a statement, where ``executemany`` does so for each row: a
    writer in a process of busy threads waited for the GIL at each one. Statements hold :data:`MANY_ROWS` rows
    (fewer within SQLite's limit of variables), then falling powers of two (:func:`.rowset.statement_rows`), so a
    handful of SQL texts serve any count and stay in the driver's statement cache. Such a statement keeps a
    statement journal (it may fail after its first row): the connection should keep its temporary files in memory
    (``PRAGMA temp_store=MEMORY``), or the journal's writes cost more than the GIL saved.
    """
    if not rows:
        return
    start = 0
    for size in statement_rows(cursor.connection, len(rows), len(rows[0]), MANY_ROWS):
        cursor.execute(_many_rows(sql, size), [value for row in rows[start : start + size] for value in row])
        start += size


@functools.lru_cache(maxsize=256)
def _many_rows(sql: str, size: int) -> str:
    """The INSERT *sql* of one row of values, for *size* rows."""
    head, marker, row = sql.rpartition(" VALUES ")
    if not marker or not row.startswith("(") or not row.endswith(")"):
        raise ValueError(f"not an INSERT of one row of values: {sql}")
    return f"{head} VALUES {', '.join([row] * size)}"


def _converted(convert: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """*values* through *convert*, each distinct value converted once."""
    seen: dict[tuple[type, Any], Any] = {}  # by type too: 1 == True, but they convert differently
    out = []
    for value in values:
        kind = type(value)
        if kind is dict or kind is list:  # JSON: each its own
            out.append(convert(value))
            continue
        try:
            converted = seen[kind, value]
        except KeyError:
            converted = seen[kind, value] = convert(value)
        except TypeError:  # not hashable
            converted = convert(value)
        out.append(converted)
    return out


#: (table, the rows' keys) → its INSERT, or None when Core must insert such rows (see :func:`insert_statement`)
_inserts: dict[tuple[Any, tuple[str, ...]], DriverStatement | None] = {}


def insert_statement(table: Any, keys: tuple[str, ...]) -> DriverStatement | None:
    """The INSERT of *keys* into *table*, with the other columns' Python defaults added (a function taking no
    context called per row, as SQLAlchemy does); None when a column the rows leave out has another default (then
    Core inserts them)."""
    try:
        return _inserts[table, keys]
    except KeyError:
        pass
    defaults: dict[str, Any] = {}
    makers: dict[str, Callable[[], Any]] = {}
    statement: DriverStatement | None = None
    for column in table.columns:
        if column.name in keys or column.primary_key or column.default is None:
            continue
        if column.default.is_scalar:
            defaults[column.name] = column.default.arg
            continue
        # SQLAlchemy wraps a function that takes no context; one that does (or a SQL default) goes through Core
        made = getattr(column.default.arg, "__wrapped__", None) if column.default.is_callable else None
        if made is None:
            break
        makers[column.name] = made
    else:
        statement = DriverStatement(insert(table), keys, defaults, makers)
    _inserts[table, keys] = statement
    return statement


class KeptWrites:
    """Short write transactions run on one SQLite connection kept out of the pool, begun and committed on the driver.

    A transaction through the ORM session costs more CPU than its few statements take to run: the pool's checkout
    and return (with its reset), the ``begin`` event, the session's transaction objects. A caller that writes often
    (the sender's rounds) keeps one connection instead and runs ``BEGIN IMMEDIATE`` (polling for the write lock
    when :data:`~server.db.POLL_WRITE_LOCK` is set, as the session's connections do), its statements and
    ``COMMIT`` on it. SQLite has one writer: the caller must not begin here while its session holds a transaction,
    nor use the session while one is open here.

    :param engine: a SQLite engine; :meth:`close` gives the connection back to its pool.
    """

    def __init__(self, engine: Engine):
        self.dialect = engine.dialect
        self._fairy = engine.raw_connection()
        self._driver: Any = self._fairy.driver_connection  # the sqlite3 connection
        self.cursor: Any = self._fairy.cursor()
        self.open = False

    def begin(self) -> None:
        """Begin a write transaction (``BEGIN IMMEDIATE``: the write lock now, not at the first write)."""
        if not POLL_WRITE_LOCK.get() or not begin_polling(self._driver):
            self.cursor.execute("BEGIN IMMEDIATE")
        self.open = True

    def commit(self) -> None:
        """Commit the open transaction, if any; rolled back if the commit fails (a busy database, say)."""
        if not self.open:
            return
        try:
            self.cursor.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        self.open = False

    def rollback(self) -> None:
        """Roll back the open transaction, if any (SQLite may have ended it already after an error)."""
        if self.open:
            self.open = False
            if self._driver.in_transaction:
                self._driver.rollback()

    def close(self) -> None:
        """Roll back what is still open and give the connection back to the pool."""
        try:
            self.rollback()
            self.cursor.close()
        finally:
            self._fairy.close()
