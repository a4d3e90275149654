from sqlalchemy import text

from server.db import get_db


def test_embedded_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path, redis_server):
    from server.app import create_app

    app = create_app({"HOME": str(tmp_path), "REDIS_URL": redis_server.url, "LOAD_ENTRY_POINTS": False})
    try:
        assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'nudge.db'}"
        with get_db(app).engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (tmp_path / "nudge.db").exists()
    finally:
        app.extensions["nudge.db"].dispose()


def test_a_database_dropped_without_dispose_closes_its_pooled_connections(database_url):
    """An app a script or a test forgets to dispose closes its connections when it goes (PostgreSQL's driver
    otherwise finds them open at garbage collection, an unraisable ResourceWarning in whatever runs next)."""
    import gc

    from flask import Flask

    from server.db import Database

    app = Flask(__name__)
    app.config["DATABASE_URL"] = database_url
    db = Database(app)
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    pool = db.engine.pool
    assert pool.checkedin() == 1
    del app, db
    gc.collect()
    assert pool.checkedin() == 0


def test_a_transaction_polling_for_the_write_lock_waits_for_it_and_keeps_the_busy_timeout(tmp_path):
    """The sender's transactions (``POLL_WRITE_LOCK``) try SQLite's write lock every ``LOCK_POLL`` seconds instead of
    sleeping in the busy handler: they still wait for a writer to finish (no "database is locked"), write after it,
    and leave their connection's busy timeout as every connection has it."""
    import threading

    from server.db import BUSY_TIMEOUT_MS, POLL_WRITE_LOCK, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        holder = engine.connect()
        holder.begin()
        holder.exec_driver_sql("INSERT INTO t VALUES (1)")  # the write lock, until it commits
        seen: dict[str, object] = {}

        def poller() -> None:
            token = POLL_WRITE_LOCK.set(True)
            try:
                with engine.begin() as conn:
                    seen["rows when it had the lock"] = conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
                    conn.exec_driver_sql("INSERT INTO t VALUES (2)")
                    seen["busy timeout"] = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            except Exception as exc:
                seen["error"] = exc
            finally:
                POLL_WRITE_LOCK.reset(token)

        thread = threading.Thread(target=poller)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive(), seen  # waiting for the lock, not failed
        holder.commit()
        holder.close()
        thread.join(30)
        assert seen == {"rows when it had the lock": 1, "busy timeout": BUSY_TIMEOUT_MS}
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT x FROM t ORDER BY rowid").scalars().all() == [1, 2]
    finally:
        engine.dispose()


def test_json_columns_are_written_as_json_dumps_writes_them(app):
    """The engines' JSON serializer (one encoder kept, not one built per value) writes json.dumps's very text without
    spaces between members, on both backends, and refuses what json.dumps refuses."""
    import json

    import pytest
    from sqlalchemy import select

    from server.db import get_session, json_dumps
    from server.models import Contact, Event

    values = [{"a": 1, "b": [1.5, None, True, 'é\u2028 "q"'], "c": {"d": -(2**63)}}, [], {}, "x", 3, 1e300]
    compact = [json.dumps(value, separators=(",", ":")) for value in values]
    assert [json_dumps(value) for value in values] == compact
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_dumps({"a": object()})
    with app.app_context():
        session = get_session()
        contact = Contact(email="json@example.com")
        session.add(contact)
        session.flush()
        session.add(Event(contact_id=contact.id, name="json.check", props=values[0], source="api"))
        session.commit()
        stored = session.execute(text("SELECT props FROM events WHERE name = 'json.check'")).scalar()
        if session.get_bind().dialect.name == "sqlite":  # the very text (PostgreSQL keeps its own form)
            assert stored == compact[0]
        assert session.scalar(select(Event.props).where(Event.name == "json.check")) == values[0]


def test_log_failure_tells_the_databases_state_in_one_line_and_a_bug_with_its_traceback(caplog):
    """Every place that outlives a failure (the scheduler, the rollup, imports, the sender) logs the database away,
    full or read-only as one line naming the state and the driver's words, and anything else as a bug."""
    import logging
    import sqlite3

    from server.db import log_failure

    logger = logging.getLogger("tests.log_failure")
    caplog.set_level(logging.DEBUG, logger="tests.log_failure")
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # SQLITE_FULL
    trouble = log_failure(logger, "the import stopped", full)
    assert trouble is not None and trouble.status == 507
    assert str(trouble) == "insufficient storage (database or disk is full)"
    [line] = caplog.records
    assert (line.levelno, line.getMessage(), line.exc_info) == (
        logging.WARNING,
        "the import stopped: insufficient storage (database or disk is full)",
        None,
    )
    caplog.clear()
    assert log_failure(logger, "the import stopped", KeyError("name"), logging.INFO) is None
    [line] = caplog.records
    assert line.levelno == logging.ERROR and line.getMessage() == "the import stopped"
    assert line.exc_info is not None and line.exc_info[1].args == ("name",)
