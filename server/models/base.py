"""Declarative base and column types shared by every model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, MetaData, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from ..clock import now

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: ``__table_args__`` of every table with an integer ``id``: ids are never handed out twice. Without
#: AUTOINCREMENT, SQLite gives the id of a deleted newest row (an erased contact) to the next row, and ids
#: reach outbox keys (``enr:<enrolment>:<step>``), signed links and logs; PostgreSQL sequences never go back.
NEVER_REUSE_IDS: dict[str, Any] = {"sqlite_autoincrement": True}

#: JSON everywhere, JSONB on PostgreSQL.
JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """Now, aware UTC, by the app's clock (``server.clock``): the engine, the workers and column defaults ask here."""
    return now()


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC; refuses naive datetimes on the way in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    #: every model maps a table (DeclarativeBase allows any FromClause); Core inserts and updates need a Table
    __table__: ClassVar[Table]
