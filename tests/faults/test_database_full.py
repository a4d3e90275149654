"""SQLite's disk full: the API answers 507 with what to do (free disk space), nothing half-written; an import stopped
by it is failed with that reason, its committed chunks standing whole, and can be retried once space is back.

The disk is filled with ``PRAGMA max_page_count`` (the database may not grow), which makes SQLite answer
``SQLITE_FULL``, the very error a full volume gives.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from server.contacts.import_runs import imports_dir, start
from server.db import get_session
from server.models import Contact, Event, ImportRecord

from ..helpers import api_key, run_worker

pytestmark = pytest.mark.sqlite


@contextmanager
def _disk_full(app, spare_pages: int = 0):
    """Every connection of *app* may add at most *spare_pages* pages to the database, until the block ends."""
    engine = app.extensions["nudge.db"].engine
    with engine.connect() as conn:
        limit = conn.exec_driver_sql("PRAGMA page_count").scalar() + spare_pages

    def cap(dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={limit}")

    event.listen(engine, "connect", cap)
    engine.dispose()  # the pooled connections were opened without the cap
    try:
        yield
    finally:
        event.remove(engine, "connect", cap)
        engine.dispose()


def _production(app) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.testing = False


def _batch(first: int, n: int) -> dict:
    pad = "x" * 400  # rows that need new pages
    return {"events": [{"contact": {"email": f"c{i}@example.com"}, "event": "a.b", "props": {"pad": pad}}
                       for i in range(first, first + n)]}  # fmt: skip


def _events(app) -> int:
    with app.app_context():
        n = get_session().scalar(select(func.count(Event.id)))
        get_session().rollback()
    return n


@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "flask-path"])
def test_ingest_on_a_full_disk_answers_507_saying_to_free_space_then_goes_on(app, client, lean):
    _production(app)
    app.wsgi_app._active = lean  # False: every post goes through Flask (as with a plugin's request hook)
    path = "/api/v1/events/batch"
    headers = {"Authorization": f"Bearer {api_key(app)}"}
    with _disk_full(app):
        response = client.post(path, json=_batch(0, 500), headers=headers)
        assert response.status_code == 507, response.get_data(as_text=True)[:2000]
        assert response.mimetype == "application/problem+json"
        assert "free disk space" in response.json["detail"], response.json
        assert int(response.headers["Retry-After"]) > 0
        assert _events(app) == 0, "all or nothing"
    response = client.post(path, json=_batch(0, 500), headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)[:2000]
    assert _events(app) == 500


def test_an_import_stopped_by_a_full_disk_fails_saying_so_and_succeeds_when_retried(app):
    rows = 3000
    stored = "full-disk.csv"
    lines = ["email,first_name"] + [f"p{i}@example.com,{'N' * 200}" for i in range(rows)]
    with app.app_context():
        (imports_dir() / stored).write_text("\n".join(lines) + "\n")
        session = get_session()
        row = ImportRecord(
            file_name=stored, stored_name=stored, size_bytes=1, header=["email", "first_name"],
            mapping={"email": "email", "first_name": "first_name"}, created_by="test",
        )  # fmt: skip
        session.add(row)
        session.commit()
        import_id = row.id
        start(session, row)
    with _disk_full(app, spare_pages=60):  # room for the first chunk or so, not for the file
        failures: list[str] = []
        run_worker(app, failures=failures)
        assert not failures, "the import's failure is its own (shown on its page); the job ends cleanly"
    with app.app_context():
        session = get_session()
        row = session.get(ImportRecord, import_id)
        assert row.status == "failed"
        assert "free disk space" in row.error and "Retry" in row.error, row.error
        assert "Traceback" not in row.error
        contacts = session.scalar(select(func.count(Contact.id)))
        assert contacts == row.created < rows, "each chunk stands whole or not at all, and the page says which"
        start(session, row)  # space is back: retried
    run_worker(app)
    with app.app_context():
        session = get_session()
        row = session.get(ImportRecord, import_id)
        assert (row.status, row.error) == ("done", "")
        assert session.scalar(select(func.count(Contact.id))) == rows
        session.rollback()
