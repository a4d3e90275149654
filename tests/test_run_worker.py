"""The test harness's worker: a job that crashed fails the test that ran it, with the job's own traceback."""

from __future__ import annotations

import pytest

from server.queue import get_queue

from .helpers import run_worker


def explode(what: str) -> None:
    raise RuntimeError(f"the job broke: {what}")


def fine() -> str:
    return "done"


def test_a_job_that_raised_fails_the_calling_test_with_its_traceback(app):
    get_queue(app).enqueue(fine)
    get_queue(app).enqueue(explode, "boom 42")
    with pytest.raises(pytest.fail.Exception) as failed:
        run_worker(app)
    text = str(failed.value)
    assert "a job run by run_worker failed" in text and "tests.test_run_worker.explode('boom 42')" in text
    assert "RuntimeError: the job broke: boom 42" in text and "Traceback" in text


def test_a_send_job_that_raised_fails_it_too(app):
    get_queue(app).enqueue_send(explode, "on the send queue")
    with pytest.raises(pytest.fail.Exception, match="the job broke: on the send queue"):
        run_worker(app)


def test_a_test_that_crashes_a_job_on_purpose_collects_the_failure_and_asserts_it(app):
    get_queue(app).enqueue(explode, "on purpose")
    failures: list[str] = []
    run_worker(app, failures=failures)
    assert len(failures) == 1 and "RuntimeError: the job broke: on purpose" in failures[0]


def test_jobs_that_failed_before_the_run_are_not_blamed_on_it(app):
    get_queue(app).enqueue(explode, "earlier")
    run_worker(app, failures=[])
    get_queue(app).enqueue(fine)
    run_worker(app)  # the earlier failure stays in the registry, and is not this run's
