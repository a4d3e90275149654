"""The live engine's clock is injectable: a test moves time with ``clock.advance``, never by editing ``due``
columns; real ``nudge`` processes share it through ``NUDGE_TEST_CLOCK_FILE``, which production refuses."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from server.config import ConfigError, load_config
from server.db import get_session
from server.engine.jobs import requeue_due
from server.engine.timeutil import to_ts
from server.models import Enrolment, EnrolmentState

from ..helpers import api_key, latest, load_rules, post_event, run_worker

SERIES = 'rule "Series"\nwhen form.submitted then\n  send email welcome\n  wait 3d\n  send email welcome\nend\n'
LATER = timedelta(days=3, minutes=1)


def test_a_wait_ends_when_the_apps_clock_moves_on(app, client, smtp_server, clock):
    load_rules(app, SERIES)
    post_event(client, api_key(app), email="ana@example.com")
    run_worker(app)
    assert len(smtp_server.wait_for(1)) == 1
    with app.app_context():
        assert requeue_due()["enrolments"] == 0, "three days have not passed"
    run_worker(app)
    assert len(smtp_server.messages) == 1

    clock.advance(LATER)
    with app.app_context():
        assert requeue_due()["enrolments"] == 1
    run_worker(app)
    assert len(smtp_server.wait_for(2)) == 2
    assert latest(app, Enrolment).state == EnrolmentState.DONE


def test_the_clock_only_moves_forward(clock):
    before = clock()
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    assert clock.advance(timedelta(hours=2)) - before >= timedelta(hours=2)


@pytest.mark.slow
def test_nudge_processes_share_the_tests_clock(app, client, smtp_server, clock, processes):
    load_rules(app, SERIES)
    procs = processes(LOG_LEVEL="WARNING")
    procs.start("worker")
    procs.start("scheduler")
    post_event(client, api_key(app), email="ana@example.com")
    assert len(smtp_server.wait_for(1, timeout=60)) == 1, procs.tail()
    with app.app_context():
        due = get_session().scalar(select(Enrolment.due))
        assert due >= to_ts(clock()) + 3 * 86400 - 60, "the journey waits three days"

    clock.advance(LATER)  # the scheduler and the worker read the same clock file
    assert len(smtp_server.wait_for(2, timeout=60)) == 2, procs.tail()


def test_the_test_clock_is_refused_unless_testing(tmp_path):
    settings = {"HOME": str(tmp_path), "TEST_CLOCK_FILE": str(tmp_path / "clock")}
    with pytest.raises(ConfigError) as refused:
        load_config(settings, environ={})
    assert str(refused.value).startswith("NUDGE_TEST_CLOCK_FILE: is for Nudge's own tests only")
    assert load_config({**settings, "TESTING": True}, environ={})["TEST_CLOCK_FILE"] == str(tmp_path / "clock")

    # a command started with it (and without NUDGE_TESTING) stops at once, with one line
    env = {"PATH": "/usr/bin:/bin", "NUDGE_HOME": str(tmp_path), "NUDGE_TEST_CLOCK_FILE": str(tmp_path / "clock")}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "db", "upgrade"],
        env={**env, "PYTHONPATH": sys.path[0]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "NUDGE_TEST_CLOCK_FILE: is for Nudge's own tests only" in done.stderr, done.stderr
    assert not (tmp_path / "clock").exists() and not (tmp_path / "nudge.db").exists()
