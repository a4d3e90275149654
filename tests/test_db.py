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
