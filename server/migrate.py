"""Apply Alembic migrations from the top-level ``migrations/`` folder."""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent
#: arbitrary constant for pg_advisory_lock: two processes starting at once migrate one after the other
_PG_LOCK_ID = 7_243_117


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revisions() -> set[str]:
    """The revisions the migrations end at: read from the migration files once a process while they stay the same
    (reading them is a third of the time an app takes to start)."""
    return set(_heads(_versions_fingerprint()))


def _versions_fingerprint() -> tuple[str, tuple[tuple[str, int, int], ...]]:
    with os.scandir(MIGRATIONS_DIR / "versions") as entries:
        files = [entry for entry in entries if entry.name.endswith(".py")]
        return str(MIGRATIONS_DIR), tuple(sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.lru_cache(maxsize=2)
def _heads(fingerprint: tuple[str, tuple[tuple[str, int, int], ...]]) -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def current_revision(engine: Engine) -> str:
    """The applied revision(s), for people: ``0002`` or ``0003a+0003b``."""
    return "+".join(sorted(current_revisions(engine))) or "none"


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the instance's migration lock: a second process migrating at the same time waits here, then finds
    nothing left to do. PostgreSQL: ``pg_advisory_lock`` on a connection of its own; SQLite: an exclusive
    ``flock`` on ``<database>.migrate-lock`` beside the database file (an in-memory database needs none)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                conn.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "heads", before: Callable[[], Any] | None = None) -> bool:
    """Bring the schema to *revision* (all heads by default) under the migration lock; return True when anything
    was applied. Running it again, or in two processes at once, applies nothing more.

    :param before: called under the lock when migrations are pending and the database already holds a schema
        (the automatic backup, :func:`server.backup.backup_before_upgrade`); when it raises, nothing is migrated.

    On SQLite, foreign keys are off while migrations run, as SQLite's own recipe for rebuilding a table
    says: with them on, dropping the old copy of ``contacts`` would delete every row that refers to it.
    The foreign key check before the commit makes sure no migration left a dangling reference.
    """
    url = engine.url.render_as_string(hide_password=False)
    if revision == "heads" and current_revisions(engine) == head_revisions():
        return False
    with migration_lock(engine):
        current = current_revisions(engine)
        if revision == "heads" and current == head_revisions():
            return False  # another process migrated while this one waited for the lock
        if before is not None and current:
            before()
        _apply(engine, url, revision)
    return True


def _apply(engine: Engine, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(conn, False)  # a no-op inside a transaction: set before BEGIN
        try:
            with conn.begin():
                dangling = _dangling_references(conn) if sqlite else set()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                left = _dangling_references(conn) - dangling if sqlite else set()
                if left:
                    raise RuntimeError(
                        f"a migration left rows pointing at rows that do not exist ({sorted(left)[:5]}, "
                        "from PRAGMA foreign_key_check); nothing was changed"
                    )
        finally:
            if sqlite:
                _sqlite_foreign_keys(conn, True)


def _sqlite_foreign_keys(conn: Connection, on: bool) -> None:
    """Switch SQLite's foreign key enforcement on the connection itself, outside any transaction."""
    driver = conn.connection.driver_connection
    if driver is None:  # only after the connection was invalidated
        raise RuntimeError("the SQLite connection was closed while migrating; run `nudge db upgrade` again")
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _dangling_references(conn: Connection) -> set[tuple[str, int, str]]:
    return {(row[0], row[1], row[2]) for row in conn.exec_driver_sql("PRAGMA foreign_key_check")}
