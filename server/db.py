"""The database extension: one SQLAlchemy engine and a scoped session per app.

SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``:
writers queue on the database lock instead of failing half-way with
``database is locked`` — the safe single-writer path for the embedded setup.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import weakref
from contextvars import ContextVar
from typing import Any, NamedTuple, cast

from flask import Flask
from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.pool import StaticPool

from .config import mask_url


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message names ``NUDGE_DATABASE_URL``.

    :param passing: the server said its refusal passes (PostgreSQL shutting down, starting up, or out of
        connections, or the connection ended by an administrator: a failover or a restart), worth another try.
    """

    def __init__(self, message: str, passing: bool = False):
        super().__init__(message)
        self.passing = passing


class Trouble(NamedTuple):
    """An error of the database itself (not of the request): what to answer and what to tell people to do."""

    #: the HTTP status: 503 (away, read-only, busy: try again) or 507 (no space left: free some)
    status: int
    title: str
    #: what happened and what to do, for a person (no SQL, no parameters, no host names)
    detail: str
    #: seconds a client should wait before trying again (``Retry-After``)
    retry_after: int
    #: the driver's own words, for the log
    reason: str

    def __str__(self) -> str:
        """For a log line: what the database's state is and the driver's words (``database unavailable (…)``)."""
        return f"{self.title.lower()} ({self.reason})"


_AWAY = (
    "the database cannot be reached right now (restarting, failing over, or down); nothing was stored: try again "
    "in a few seconds. If it lasts, check that the database server runs and that NUDGE_DATABASE_URL points at it"
)
_FULL = (
    "the database's disk is full (or the database reached its size limit), so nothing was stored: free disk space on "
    'the volume that holds the database (see docs/deploy.md, "Disk full"), then try again'
)
_READ_ONLY = (
    "the database takes no writes right now (a failover still in progress, or its file or folder is not writable by "
    "Nudge); nothing was stored: try again in a few seconds, and if it lasts make the database writable"
)
_BUSY = "the database is busy (another writer held what this needed); nothing was stored: try again in a few seconds"
#: PostgreSQL SQLSTATEs of a server going away or refusing connections (class 08: connection exception; 57P0x:
#: shut down by an administrator, crashed, starting up; 53300: too many connections)
_PG_AWAY = ("57P01", "57P02", "57P03", "53300")
#: PostgreSQL SQLSTATEs of a transaction ended for another's sake, which the same work done again gets past: a
#: deadlock (40P01), a serialization failure (40001), a lock not available (55P03)
_PG_BUSY = ("40P01", "40001", "55P03")
_SQLITE_FULL, _SQLITE_READONLY, _SQLITE_BUSY, _SQLITE_IOERR, _SQLITE_CANTOPEN = 13, 8, 5, 10, 14


def database_trouble(exc: BaseException) -> Trouble | None:
    """The :class:`Trouble` when *exc* (or an error it was raised from or while handling) says the database is
    away, full, read-only or busy; None for any other error (a bug, a constraint: not the database's state).

    SQLite rolls a transaction back on ``SQLITE_FULL``, so what reaches the caller may be a later error (releasing
    a savepoint that is gone): the chain of causes is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _trouble_of(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def log_failure(logger: logging.Logger, what: str, exc: BaseException, level: int = logging.WARNING) -> Trouble | None:
    """Log that *what* failed with *exc*, and return the database's :class:`Trouble` in it (None: another error).

    The database away, full, read-only or busy is its state, not a bug: one line at *level*, ``<what>: database
    unavailable (<the driver's words>)``, however often it happens. Any other error is a bug: *what* with its
    traceback, at ERROR.
    """
    trouble = database_trouble(exc)
    if trouble is None:
        logger.error("%s", what, exc_info=exc)
    else:
        logger.log(level, "%s: %s", what, trouble)
    return trouble


def _trouble_of(exc: BaseException) -> Trouble | None:
    from sqlalchemy import exc as sa_exc

    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    away = Trouble(503, "Database unavailable", _AWAY, 5, reason)
    if isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError):  # TimeoutError: no pooled connection came free
        return away
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return away
        return _trouble_of(exc.orig) if exc.orig is not None and exc.orig is not exc else None
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _SQLITE_FULL:
            return Trouble(507, "Insufficient storage", _FULL, 60, reason)
        if primary == _SQLITE_READONLY:
            return Trouble(503, "Database read-only", _READ_ONLY, 5, reason)
        if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN):
            return away
        if primary == _SQLITE_BUSY:
            return Trouble(503, "Database busy", _BUSY, 2, reason)
        return None
    module = type(exc).__module__
    if module.startswith("psycopg"):
        state = getattr(exc, "sqlstate", None)
        if state == "53100":  # disk_full
            return Trouble(507, "Insufficient storage", _FULL, 60, reason)
        if state == "25006":  # read_only_sql_transaction: a standby not yet promoted
            return Trouble(503, "Database read-only", _READ_ONLY, 5, reason)
        import psycopg

        # no SQLSTATE: the client lost (or never had) its connection
        if (state is None and isinstance(exc, psycopg.OperationalError)) or (state or "").startswith("08"):
            return away
        if state in _PG_AWAY:
            return away
        if state in _PG_BUSY:
            return Trouble(503, "Database busy", _BUSY, 2, reason)
    return None


#: the connections' busy timeout (ms): how long a transaction waits for SQLite's write lock
BUSY_TIMEOUT_MS = 30000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


#: execution option of a read-only transaction: on SQLite it begins DEFERRED, so it waits for no writer (WAL);
#: it must end before anything is written (a write in it could fail at once with "database is locked")
READ_ONLY = "nudge_read_only"


#: set (for the current thread or task) by code whose write transactions should poll for SQLite's write lock
#: every ``LOCK_POLL`` seconds instead of sleeping in SQLite's busy handler (1, 2, 5, 10, 15, 20, 25 ms… between its
#: tries: a lock held 3 ms costs a waiter 8): the sender, whose lanes wait on each of its short transactions
POLL_WRITE_LOCK: ContextVar[bool] = ContextVar("nudge_poll_write_lock", default=False)
LOCK_POLL = 0.0005


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN DEFERRED")
    elif not POLL_WRITE_LOCK.get() or not begin_polling(conn.connection.dbapi_connection):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def begin_polling(dbapi_connection: Any) -> bool:
    """``BEGIN IMMEDIATE``, tried every ``LOCK_POLL`` seconds while another connection writes; False when the lock
    was not had within the busy timeout (the caller then waits as every connection does, and fails as they do)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    return False
            time.sleep(LOCK_POLL)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()


def read_only(session: Session) -> None:
    """Make the session's next transaction a read (SQLite: ``BEGIN DEFERRED``); the caller ends it before writing."""
    if not session.in_transaction():
        session.connection(execution_options={READ_ONLY: True})


def _json_encoder(sort_keys: bool) -> Any:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: json.dumps itself
        return None
    # markers None: no circular check (a cycle ends in RecursionError instead; one dict of markers would also be
    # shared by the threads encoding at once); the rest json.dumps's defaults
    default, escape = json.JSONEncoder().default, json.encoder.encode_basestring_ascii
    return make(None, default, escape, None, ":", ",", sort_keys, False, True)


_ENCODERS = (_json_encoder(False), _json_encoder(True))


def json_dumps(value: Any, sort_keys: bool = False) -> str:
    """JSON text as SQLite's own ``json()`` writes it (no spaces between members: ~2 bytes a member on disk), made
    without building an encoder for each value (~0.8 µs a small object instead of ~3: every event's props go through
    it); the text ``json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))`` gives."""
    encode = _ENCODERS[sort_keys]
    if encode is None:
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))
    return "".join(encode(value, 0))


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with Nudge's per-backend settings.

    Statement parameters stay out of error messages (``hide_parameters``): a failed insert must not put
    a contact's address into a log or a stored error.
    """
    kwargs.setdefault("hide_parameters", True)
    # JSON columns without the spaces after ``,`` and ``:`` (SQLite stores the text: ~2 bytes a member)
    kwargs.setdefault("json_serializer", json_dumps)
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):  # one shared in-memory database (simulation)
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def affected_rows(result: Result[Any]) -> int:
    """How many rows an ``UPDATE`` or ``DELETE`` run through ``Session.execute`` changed.

    ``Session.execute`` is typed to return a plain ``Result``; for DML it is a ``CursorResult``, which has ``rowcount``.
    """
    return cast("CursorResult[Any]", result).rowcount


def check_connection(engine: Engine) -> None:
    """Open one connection, or raise :class:`DatabaseUnavailable` with a readable reason.

    The refusal passes (worth another try) when the server says so (PostgreSQL shutting down, starting up, out of
    connections, an administrator ending the connection) or when it accepted the connection and then dropped it
    (a failover or a restart under way); a wrong address, name or password does not.
    """
    try:
        conn = engine.connect()
    except Exception as exc:  # any driver error: refused, auth, unknown db, bad path
        raise _unavailable(engine, exc, passing=_dropped(exc)) from None
    try:
        with conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # connected, then lost: the server went away meanwhile
        trouble = database_trouble(exc)
        raise _unavailable(engine, exc, passing=trouble is not None and trouble.status == 503) from None


def _dropped(exc: BaseException) -> bool:
    """Whether a failed connect says the server ended it (not refused it): its SQLSTATE, or libpq's words for a
    connection closed by the server during the handshake."""
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) in _PG_AWAY or "server closed the connection unexpectedly" in str(orig)


def _unavailable(engine: Engine, exc: BaseException, passing: bool) -> DatabaseUnavailable:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return DatabaseUnavailable(
        f"cannot connect to the database at {mask_url(engine.url.render_as_string(hide_password=False))}: {reason} "
        "(check NUDGE_DATABASE_URL)",
        passing=passing,
    )


class Database:
    """Flask extension owning the engine and the session factory."""

    def __init__(self, app: Flask | None = None):
        self._engine: Engine | None = None
        self._session: scoped_session[Session] | None = None
        # an app dropped without dispose() (a script's, a test's) closes its pooled connections when it goes,
        # instead of leaving the driver to find them open at garbage collection
        self._engines: list[Engine] = []
        weakref.finalize(self, _dispose_all, self._engines)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        self._engine = make_engine(app.config["DATABASE_URL"])
        self._session = scoped_session(sessionmaker(self._engine, expire_on_commit=False))
        self._engines.append(self._engine)
        app.extensions["nudge.db"] = self

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            if self._session is not None:
                _close_quietly(self._session)

    @property
    def engine(self) -> Engine:
        """The engine; raises :class:`RuntimeError` before :meth:`init_app`."""
        if self._engine is None:
            raise RuntimeError("the database extension is not bound to an app yet: call Database.init_app(app) first")
        return self._engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self._engine = engine
        self._engines.append(engine)

    @property
    def session(self) -> scoped_session[Session]:
        """The scoped session factory; raises :class:`RuntimeError` before :meth:`init_app`."""
        if self._session is None:
            raise RuntimeError("the database extension is not bound to an app yet: call Database.init_app(app) first")
        return self._session

    def dispose(self) -> None:
        if self._session is not None:
            self._session.remove()
        if self._engine is not None:
            self._engine.dispose()


def _close_quietly(sessions: scoped_session[Session]) -> None:
    """End the context's session. Its closing rollback fails when the database dropped the connection meanwhile (a
    failover, a restart): that is no error of the job or request that ran (whatever it wrote was committed or is
    gone), and raised here it ended RQ's worker loop. The connection is invalidated and the pool opens a new one."""
    try:
        sessions.remove()
    except Exception as exc:
        trouble = database_trouble(exc)
        if trouble is None:
            raise
        logging.getLogger(__name__).warning("closing a session: %s", trouble)
        try:
            sessions().invalidate()
        finally:
            sessions.registry.clear()


def _dispose_all(engines: list[Engine]) -> None:
    for engine in engines:
        engine.dispose()


def get_db(app: Flask | None = None) -> Database:
    from flask import current_app

    return (app or current_app).extensions["nudge.db"]


def get_session() -> Session:
    """The current app context's session."""
    return get_db().session()
