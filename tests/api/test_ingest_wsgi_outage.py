"""The lean event path while the database is away, full or read-only: the same 503/507 problem answer as Flask's
path, logged as one warning line a post, not a traceback (hundreds a second during an outage); a bug still logs
its traceback and answers 500."""

from __future__ import annotations

import logging

import pytest
from flask import request_started

from server.api import ingest_wsgi

from ..faults.sqlite_outage import database_away, disk_full, read_only
from ..helpers import api_key

pytestmark = pytest.mark.sqlite

EVENT = {"contact": {"email": "a@example.com"}, "event": "form.submitted", "props": {"pad": "x" * 4000}}
BODIES = {"/api/v1/events": EVENT, "/api/v1/events/batch": {"events": [EVENT]}}


def _lean_key(app, client) -> tuple[dict[str, str], list[str]]:
    """Headers with a key whose use is noted (its first post goes through Flask), and the paths Flask dispatches
    from then on."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: errors answered, not raised
    app.testing = False
    headers = {"Authorization": f"Bearer {api_key(app)}"}
    assert client.post("/api/v1/events", json=EVENT, headers=headers).status_code == 202
    seen: list[str] = []

    def started(sender, **_extra) -> None:
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app, weak=False)
    return headers, seen


def _tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.mark.parametrize("path", list(BODIES), ids=["single", "batch"])
@pytest.mark.parametrize(
    ("trouble", "status", "title"),
    [
        (database_away, 503, "database unavailable"),
        (read_only, 503, "database read-only"),
        (disk_full, 507, "insufficient storage"),
    ],
    ids=["away", "read-only", "full"],
)
def test_a_database_outage_on_the_lean_path_logs_one_line_a_post_and_no_traceback(
    app, client, caplog, path, trouble, status, title
):
    headers, flask_paths = _lean_key(app, client)
    caplog.set_level(logging.DEBUG)
    posts = 3
    with trouble(app):
        for _ in range(posts):
            response = client.post(path, json=BODIES[path], headers=headers)
            assert response.status_code == status, response.get_data(as_text=True)[:2000]
            assert response.mimetype == "application/problem+json"
            assert response.json["status"] == status
            assert int(response.headers["Retry-After"]) > 0
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert flask_paths == [], "answered by the lean path"
    assert _tracebacks(caplog) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == posts, warnings
    for line in warnings:
        assert line.startswith(f"POST {path}: {title} ("), line
        assert "a@example.com" not in line and "xxxx" not in line, "no request body in the log"


def test_a_bug_on_the_lean_path_still_logs_its_traceback_and_answers_500(app, client, caplog, monkeypatch):
    headers, flask_paths = _lean_key(app, client)

    def broken(_prepared):
        raise RuntimeError("a bug in storing events")

    monkeypatch.setattr(ingest_wsgi, "store_together", broken)
    caplog.set_level(logging.DEBUG)
    response = client.post("/api/v1/events", json=EVENT, headers=headers)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert flask_paths == [], "answered by the lean path"
    [record] = _tracebacks(caplog)
    assert record.getMessage() == "Exception on /api/v1/events [POST]"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_flasks_own_path_answers_an_outage_without_a_traceback(app, client, caplog):
    """The API key's look-up runs on a raw driver connection: its error (``sqlite3.OperationalError``, not
    SQLAlchemy's) is database trouble too, answered 503 with one line, as on the lean path."""
    headers, _flask_paths = _lean_key(app, client)
    caplog.set_level(logging.DEBUG)
    with database_away(app):
        response = client.post("/api/v1/events/batch?x=1", json=BODIES["/api/v1/events/batch"], headers=headers)
    assert response.status_code == 503, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/problem+json" and int(response.headers["Retry-After"]) > 0
    assert _tracebacks(caplog) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("POST /api/v1/events/batch: database unavailable ("), warnings
