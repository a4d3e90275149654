"""The "a job waits" flag (server/engine/wake.py) is set on a connection the process keeps for it: set with its TTL,
one job queued while it stands; a connection Redis dropped is replaced at once (no wake lost, no outage noted);
a forked child sets it on a connection of its own (never the parent's socket); a dropped client is not kept alive."""

from __future__ import annotations

import os

from server.engine.wake import FLAG_TTL, _flag, wake_engine
from server.queue import get_queue

WAKE_JOB = "server.engine.wake.process_pending"


def _jobs(app) -> list[str]:
    return [job.func_name for job in get_queue(app).queue.get_jobs()]


def test_the_flag_is_set_once_with_its_ttl_and_one_job_waits(app):
    with app.app_context():
        tq = get_queue()
        assert wake_engine() and wake_engine() and wake_engine()
        assert 0 < tq.redis.ttl(_flag()) <= FLAG_TTL
        assert _jobs(app) == [WAKE_JOB]
        tq.redis.delete(_flag())  # what the job does before it claims: the next events queue the next job
        assert wake_engine()
        assert _jobs(app) == [WAKE_JOB, WAKE_JOB]


def test_a_dropped_connection_is_replaced_without_losing_the_wake(app):
    with app.app_context():
        tq = get_queue()
        assert wake_engine()
        tq.redis.delete(_flag())
        killed = tq.redis.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1, "the flag's own connection was open"
        assert wake_engine()
        assert tq.redis.exists(_flag()) == 1
        assert not tq.outage
        assert _jobs(app) == [WAKE_JOB, WAKE_JOB]


def test_a_forked_child_sets_the_flag_on_its_own_connection(app):
    with app.app_context():
        tq = get_queue()
        assert wake_engine()
        tq.redis.delete(_flag())
        pid = os.fork()
        if pid == 0:  # the child: its answer is its exit code
            code = 1
            try:
                code = 0 if wake_engine() and tq.redis.exists(_flag()) == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        tq.redis.delete(_flag())
        assert wake_engine(), "the parent's connection still in step after the child's command"
        assert tq.redis.exists(_flag()) == 1


def test_a_dropped_client_takes_its_setter_and_connection_along(app):
    import gc
    import weakref

    from server.engine import wake

    with app.app_context():
        tq = get_queue()
        assert wake_engine()
        client = weakref.ref(tq.redis)
        tq._redis = tq._queue = tq._send_queue = None  # the queue makes a new client; nobody holds the old one
        gc.collect()
        assert client() is None, "the setter keeps the client (and its connections) alive"
        assert all(c is not None for c in wake._setters)
        assert wake_engine(), "a new client gets its own setter"
