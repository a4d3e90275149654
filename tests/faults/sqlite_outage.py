"""A SQLite database made unusable for a while: its file gone (a folder in its place), or every new connection
running a pragma that makes it full or read-only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url


@contextmanager
def database_away(app: Any) -> Iterator[None]:
    """The SQLite file of *app* cannot be opened (a folder stands in its place) until the block ends."""
    engine = app.extensions["nudge.db"].engine
    path = Path(make_url(app.config["DATABASE_URL"]).database or "")
    engine.dispose()  # the pooled connections would still reach the file
    files = (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    moved = [(f, f.with_name(f.name + ".away")) for f in files if f.exists()]
    for f, away in moved:
        f.rename(away)
    path.mkdir()
    try:
        yield
    finally:
        path.rmdir()
        for f, away in moved:
            away.rename(f)
        engine.dispose()


@contextmanager
def every_connection(app: Any, pragma: str) -> Iterator[None]:
    """Every new connection of *app* runs *pragma* (a full disk, a read-only database) until the block ends."""
    engine = app.extensions["nudge.db"].engine

    def apply(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(pragma)

    event.listen(engine, "connect", apply)
    engine.dispose()  # the pooled connections were opened without it
    try:
        yield
    finally:
        event.remove(engine, "connect", apply)
        engine.dispose()


def disk_full(app: Any) -> Any:
    """The database may not grow by one page until the block ends (SQLite answers ``SQLITE_FULL``). Its free pages
    (those a dropped index or deleted rows left) are given back first, by ``VACUUM``: a write would fill them before
    it needed a new page, and the disk would not be full for it."""
    connection = app.extensions["nudge.db"].engine.raw_connection()
    try:
        connection.driver_connection.execute("VACUUM")  # outside a transaction (the driver begins none for it)
        pages = connection.driver_connection.execute("PRAGMA page_count").fetchone()[0]
    finally:
        connection.close()
    return every_connection(app, f"PRAGMA max_page_count={pages}")


def read_only(app: Any) -> Any:
    """The database takes no writes until the block ends (SQLite answers ``SQLITE_READONLY``)."""
    return every_connection(app, "PRAGMA query_only=ON")
