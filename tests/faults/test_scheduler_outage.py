"""The scheduler while the database is away: one warning when the outage starts, no traceback a tick, one line
when it is back; an error that is no database's trouble still logs its traceback every tick."""

from __future__ import annotations

import logging

import pytest

from server.cli.scheduler_ticks import Ticks
from server.engine import jobs

from .sqlite_outage import database_away

pytestmark = pytest.mark.sqlite


def _records(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "server.scheduler" and r.levelno == level]


def test_a_database_outage_is_logged_once_by_the_scheduler_and_its_end_once(app, caplog):
    ticks = Ticks(app)
    ticks.tick()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="server.scheduler")
    with database_away(app):
        for _ in range(5):
            ticks.tick()
    assert [r for r in caplog.records if r.exc_info] == [], "no traceback a tick"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith("scheduler tick failed: database unavailable ("), warning
    assert "retrying every" in warning
    assert len(_records(caplog, logging.DEBUG)) == 4, "the ticks after the first are quiet"
    assert not any("reachable again" in r.getMessage() for r in caplog.records), "not while the database is away"

    ticks.tick()
    ticks.tick()
    back = [r.getMessage() for r in _records(caplog, logging.INFO) if "reachable again" in r.getMessage()]
    assert back == ["database reachable again after 5 failed ticks"]
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1, "nothing more to warn of"


def test_a_scheduler_error_that_is_no_outage_logs_its_traceback_every_tick(app, caplog, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the scheduler")

    monkeypatch.setattr(jobs, "requeue_due", broken)
    ticks = Ticks(app)
    caplog.set_level(logging.DEBUG)
    ticks.tick()
    ticks.tick()
    failed = [r for r in _records(caplog, logging.ERROR) if r.exc_info]
    assert len(failed) == 2
    assert all(isinstance(r.exc_info[1], RuntimeError) for r in failed if r.exc_info)
    monkeypatch.undo()
    ticks.tick()
    assert not any("reachable again" in r.getMessage() for r in caplog.records), "no outage to end"


def test_the_stats_rollup_meets_a_full_or_read_only_database_with_one_line(app, client, caplog):
    """A probe of the database passes when it is read-only or full; the rollup that folds the new counters then
    fails on its write and logged a traceback each tick: now one warning, and the counters are folded later."""
    from server.db import get_session

    from ..helpers import api_key, load_rules, post_event, run_worker
    from .sqlite_outage import read_only

    load_rules(app)
    post_event(client, api_key(app))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    run_worker(app)  # the event processed; its counters wait for the rollup (the worker's own may fold some)
    caplog.set_level(logging.DEBUG)
    with read_only(app), app.app_context():
        folded = jobs.roll_up_stats(get_session(), limit=1000)
    assert folded == 0
    assert [r for r in caplog.records if r.exc_info] == [], "no traceback"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(
        "the stats rollup stopped until the next tick (it resumes from its watermark): database read-only ("
    ), warnings


def test_the_scheduled_cleanup_meets_a_read_only_database_with_one_line(app, client, caplog):
    """The scheduler's retention cleanup (the one job that frees space on a full disk) logged a traceback each run
    while the database took no writes: now one warning naming the database's state, and it runs again next time."""
    from server.cli.cleanup import scheduled_cleanup

    from ..helpers import api_key, load_rules, post_event, run_worker
    from .sqlite_outage import read_only

    load_rules(app)
    post_event(client, api_key(app))
    run_worker(app)  # counters for the rollup the cleanup starts with (the worker's own folds at most some)
    caplog.set_level(logging.DEBUG, logger="server.scheduler")
    with read_only(app), app.app_context():
        scheduled_cleanup(app)(True)
    assert [r for r in caplog.records if r.exc_info] == [], "no traceback"
    warnings = [r.getMessage() for r in _records(caplog, logging.WARNING)]
    assert len(warnings) == 1 and warnings[0].startswith(
        "retention cleanup failed; the next one runs in CLEANUP_INTERVAL seconds: database read-only ("
    ), warnings
    caplog.clear()
    with app.app_context():
        scheduled_cleanup(app)(True)
    assert [r.getMessage() for r in _records(caplog, logging.INFO)] == ["retention cleanup deleted nothing"]
