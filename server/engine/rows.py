"""How many rows a statement changed: SQLAlchemy types ``Session.execute()`` as returning any kind of result."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result


def changed(result: Result[Any]) -> int:
    """The row count of an ``UPDATE``, ``DELETE`` or ``INSERT`` (always a cursor result at run time)."""
    return cast(CursorResult[Any], result).rowcount
