"""The send path's statements of every round (stamp, success, history, trace) run through SQLite's driver.

A round of sends writes four statements for two or three messages; through SQLAlchemy each costs more CPU than
SQLite takes to run it. :class:`RoundStatement` compiles its statement once per dialect and converts each value as
SQLAlchemy would (the column types' bind processors), then runs ``executemany`` on the driver's cursor. Other
databases go through SQLAlchemy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

__all__ = ["RoundStatement"]

#: the SQL, then for each of its parameters: the row's key and its conversion, or (None, None, a constant)
_Plan = tuple[str, tuple[tuple[str | None, Callable[[Any], Any] | None, Any], ...]]


class RoundStatement:
    """An UPDATE or INSERT run for many parameter sets at once.

    :param statement: the statement, with a bind parameter (or a column, for an INSERT) for each key of a row.
    :param keys: an INSERT's columns, all given in every row.
    """

    def __init__(self, statement: Any, keys: Sequence[str] | None = None):
        self.statement = statement
        self.keys = list(keys) if keys is not None else None
        self._plans: dict[Any, _Plan] = {}

    def _plan(self, dialect: Any) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
            binds = []
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if bind.required:  # a value of each row
                    binds.append((name, convert, None))
                else:  # a constant of the statement (``status == 'sending'``), converted once
                    binds.append((None, None, bind.value if convert is None else convert(bind.value)))
            plan = self._plans[dialect] = (str(compiled), tuple(binds))
        return plan

    def run(self, connection: Connection, rows: list[dict[str, Any]]) -> int:
        """Execute for each of *rows* in the connection's transaction; return how many rows it changed in all
        (-1 where the driver cannot say, see ``supports_sane_multi_rowcount``)."""
        if connection.dialect.name != "sqlite":
            result = connection.execute(self.statement, rows)
            return result.rowcount if connection.dialect.supports_sane_multi_rowcount or len(rows) == 1 else -1
        sql, binds = self._plan(connection.dialect)
        values = [
            tuple(
                constant if name is None else row[name] if convert is None else convert(row[name])
                for name, convert, constant in binds
            )
            for row in rows
        ]
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(sql, values)
            return int(cursor.rowcount)
        finally:
            cursor.close()
