"""Many rows in one ``INSERT``: the rows travel as one JSON array that the database unpacks itself
(``json_each`` on SQLite, ``jsonb_array_elements`` on PostgreSQL).

An ``executemany`` through SQLAlchemy processes every parameter of every row in Python; here the rows are one
``json.dumps`` and the values common to all rows (a timestamp) are bound once, which makes a bulk import several
times faster on both databases.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table, Text, bindparam, cast, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..db import READ_ONLY


def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]] | str,
    constants: Mapping[str, Any] | None = None,
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert *rows* (values in the order of *columns*, JSON-serialisable; or their JSON array) with *constants* in
    every row.

    :param returning: columns to return for each inserted row (in no promised order).
    :raises ValueError: when a column with a per-row Python default (``default=callable``) is given no value: an
        ``INSERT … SELECT`` would call it once for all rows.
    """
    constants = dict(constants or {})
    missing = [
        column.name
        for column in table.c
        if column.default is not None
        and getattr(column.default, "is_callable", False)
        and column.name not in columns
        and column.name not in constants
    ]
    if missing:
        raise ValueError(f"insert_rows into {table.name} needs a value for {', '.join(missing)} (a per-row default)")
    if not rows:
        return []
    cells = _cells(session, table, columns, rows)
    fixed = [literal(v, table.c[name].type) for name, v in constants.items()]
    stmt = insert(table).from_select([*columns, *constants], select(*cells, *fixed))
    if not returning:
        session.connection().execute(stmt)
        return []
    # all(): one fetchall from the driver, where iterating fetches row by row
    return list(session.connection().execute(stmt.returning(*(table.c[name] for name in returning))).all())


#: values one statement of :func:`insert_values` carries at most (fewer where SQLite allows fewer variables): 1,000
#: contacts, 12,000 tags
VALUES_CELLS = 12_000
#: the statements of insert_values, by table, columns, constants and rows: SQLite prepares each text once (the
#: driver keeps the prepared statements of the texts it ran last)
_VALUES_SQL: dict[tuple[str, tuple[str, ...], tuple[str, ...], int], str] = {}


def insert_values(
    session: Session, table: Table, columns: Sequence[str], cells: list[Any], constants: Mapping[str, Any]
) -> None:
    """On SQLite, insert rows given as one flat list *cells* (each row's values in the order of *columns*, as the
    driver takes them: a JSON column's as its text), with *constants* in every row, in multi-row
    ``INSERT … SELECT … FROM (VALUES …)`` statements.

    The values are bound straight to SQLite's statement: no JSON document to write and for the database to take
    apart again, column by column (:func:`insert_rows`, ~5 µs a contact more). Statements carry
    :data:`VALUES_CELLS` values, the rest in statements of 2ⁿ rows (512, 256 … 1 for contacts), so a few texts
    serve any row count and each is prepared once (:func:`statement_rows`).

    :raises ValueError: on another database, or when *cells* is no whole number of rows.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        raise ValueError("insert_values writes to SQLite only; use insert_rows")
    width = len(columns)
    if len(cells) % width:
        raise ValueError(f"{len(cells)} values are no whole number of rows of {width} columns")
    names = tuple(constants)
    fixed = []
    for name, value in constants.items():
        process = table.c[name].type.bind_processor(connection.dialect)
        fixed.append(process(value) if process is not None else value)
    driver = connection.connection.dbapi_connection
    assert driver is not None
    done = 0
    for count in statement_rows(driver, len(cells) // width, width, VALUES_CELLS // width, bound=len(fixed)):
        key = (table.name, tuple(columns), names, count)
        sql = _VALUES_SQL.get(key)
        if sql is None:
            row = "(" + ",".join("?" * width) + ")"
            sql = _VALUES_SQL[key] = (
                f"INSERT INTO {table.name} ({', '.join((*columns, *names))}) "
                f"SELECT v.*{''.join(', ?' for _ in names)} FROM (VALUES {','.join([row] * count)}) AS v"
            )
        connection.exec_driver_sql(sql, (*fixed, *cells[done * width : (done + count) * width]))
        done += count


def statement_rows(driver: Any, rows: int, width: int, most: int, bound: int = 0) -> Iterator[int]:
    """The row count of each statement in turn that carries *rows* rows of *width* values as one multi-row
    statement on the SQLite *driver* connection: *most* rows (fewer where SQLite's limit of variables, less the
    *bound* values of every statement, allows fewer) while that many are left, then falling powers of two (512,
    256 … 1), so that a few SQL texts serve any count and SQLite prepares each once.

    The ingest's writer (:func:`server.engine.driver_sql.insert_many`) and the importer (:func:`insert_values`)
    split their rows so.
    """
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if hasattr(driver, "getlimit") else 999
    most = max(1, min(most, (limit - bound) // width))
    while rows >= most:
        yield most
        rows -= most
    while rows:
        count = 1 << (rows.bit_length() - 1)
        yield count
        rows -= count


def update_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Update, in one ``UPDATE … FROM``, the row whose first column (its key, such as ``id``) has each row's first
    value: the other *columns* from the row's other values, and *constants*."""
    if not rows:
        return
    values = select(
        *(cell.label(name) for cell, name in zip(_cells(session, table, columns, rows), columns, strict=True))
    )
    source = values.subquery("source")
    changes: dict[str, Any] = {name: source.c[name] for name in columns[1:]}
    changes.update({name: literal(v, table.c[name].type) for name, v in (constants or {}).items()})
    session.connection().execute(update(table).where(table.c[columns[0]] == source.c[columns[0]]).values(changes))


def reserve_ids(session: Session, table: Table, count: int) -> range | None:
    """On SQLite, the ids the next *count* rows of *table* get (``AUTOINCREMENT``: above the largest id it ever
    gave), for an insert that names them itself in the same transaction; None on other databases.

    The transaction holds SQLite's write lock from its first statement (``BEGIN IMMEDIATE``), so no other writer
    takes them in between; an insert naming its ids needs no ``RETURNING`` (~1.4 µs a row) to learn them. Should
    another writer take one all the same, the insert fails on the key: nothing is written twice.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite" or connection.get_execution_options().get(READ_ONLY):
        return None  # a read-only (deferred) transaction would not hold the lock
    largest = text(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = :name), 0), "
        f"coalesce((SELECT max(id) FROM {table.name}), 0))"
    )
    base = int(connection.execute(largest, {"name": table.name}).scalar_one())
    return range(base + 1, base + 1 + count)


def driver_rows(connection: Connection, statement: Any) -> list[Any]:
    """The rows *statement* selects, as the driver's tuples: a SQLAlchemy ``Row`` for each costs more than the
    database takes to read it (~1.5 µs a row). For statements whose columns need no conversion (no dates)."""
    result = connection.execute(statement)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN (…)`` over *values* sent as one JSON array: a few thousand keys cost one parameter, not one
    each (which SQLAlchemy expands and binds one by one)."""
    return column.in_(_values(session, column, values))


def insert_each(
    session: Session, table: Table, column: str, values: Iterable[Any], constants: Mapping[str, Any]
) -> None:
    """Insert a row for each of *values* (as *column*) with *constants* in every row: on SQLite bound to
    :func:`insert_values`'s statements, elsewhere sent as one flat JSON array (less JSON for the database to read
    than :func:`insert_rows` of one-value rows)."""
    values = list(values)
    if values and session.get_bind().dialect.name == "sqlite":
        insert_values(session, table, (column,), values, constants)
    elif values:
        fixed = [literal(v, table.c[name].type) for name, v in constants.items()]
        each = _values(session, table.c[column], values).subquery()
        stmt = insert(table).from_select([column, *constants], select(*each.c, *fixed))
        session.connection().execute(stmt)


#: rows by key: the values of the *names* the key's rows share, and each row's value of *column*
Groups = dict[Hashable, tuple[Sequence[Any], list[Any]]]


def grouped(rows: Iterable[tuple[Any, Hashable, Sequence[Any]]]) -> Groups:
    """Rows given as (value, key, values shared by the key's rows) grouped by key, keys in the order first seen."""
    groups: Groups = {}
    for value, key, cells in rows:
        group = groups.get(key)
        if group is None:
            group = groups[key] = (cells, [])
        group[1].append(value)
    return groups


def insert_groups(
    session: Session,
    table: Table,
    column: str,
    names: Sequence[str],
    groups: Groups,
    constants: Mapping[str, Any],
    least: int = 50,
) -> None:
    """Insert the rows of *groups*: a key with at least *least* rows in one :func:`insert_each` of their *column*
    values, the rest in one :func:`insert_rows` (a tag most contacts get, an event most contacts announce)."""
    rest: list[list[Any]] = []
    for cells, values in groups.values():
        if len(values) >= least:
            insert_each(session, table, column, values, {**dict(zip(names, cells, strict=True)), **constants})
        else:
            rest += [[value, *cells] for value in values]
    insert_rows(session, table, (column, *names), rest, constants)


def _values(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """A ``SELECT`` of *values*, one row each as *column*'s type, from one JSON array."""
    document = bindparam(None, json.dumps(list(values), separators=(",", ":")), type_=Text)
    if session.get_bind().dialect.name == "postgresql":
        elements = func.jsonb_array_elements_text(cast(document, JSONB)).table_valued("value")
        return select(cast(elements.c.value, column.type))
    return select(func.json_each(document).table_valued("value").c.value)


def _cells(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]] | str) -> list[Any]:
    """One SQL expression per column, reading that column's value of each row from the JSON document of *rows*
    (or *rows* itself, when it is that document already)."""
    text = rows if isinstance(rows, str) else json.dumps(rows, separators=(",", ":"))
    document = bindparam("rows", text, type_=Text)
    if session.get_bind().dialect.name == "postgresql":
        value = func.jsonb_array_elements(cast(document, JSONB)).table_valued("value").c.value
        return [
            value.op("->")(i) if isinstance(table.c[name].type, JSON) else cast(value.op("->>")(i), table.c[name].type)
            for i, name in enumerate(columns)
        ]
    value = func.json_each(document).table_valued("value").c.value
    # json_quote keeps a JSON column's object as JSON text (and would quote a bare string, as the column holds it)
    return [
        func.json_quote(func.json_extract(value, f"$[{i}]"))
        if isinstance(table.c[name].type, JSON)
        else func.json_extract(value, f"$[{i}]")
        for i, name in enumerate(columns)
    ]
