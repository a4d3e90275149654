"""A 2,000-contact, three-step journey run by real processes while workers (and once the scheduler) are killed
with -9, Redis is flushed and the SMTP server goes down: every contact gets each message exactly once, or the
message is surfaced as ``unknown`` (a worker died while handing it over); none is lost or doubled."""

from __future__ import annotations

import itertools
import time

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import Message, MessageStatusChange
from server.queue import get_queue

from ..helpers import api_key
from .journey import assert_exactly_once, counts, install_series, outbox, received

pytestmark = pytest.mark.slow

CONTACTS = 2000
#: small leases and back-offs so that recovery takes seconds, not minutes
SETTINGS = {"SCHEDULER_INTERVAL": 0.2, "REQUEUE_AFTER": 1, "ENGINE_LEASE": 2, "RETRY_BASE": 1, "LOG_LEVEL": "WARNING"}
#: SMTP connections per worker (the default): each may be in the middle of handing over a message when it dies
CONNECTIONS = 4
POLL = 0.5
#: a worker is killed in the middle of a job once it has been up this long (a fresh one gets some work done)
MIN_AGE = 2.0
#: enough to hit every kind of job many times; more would only make the run slower
MAX_KILLS = 40


class Workers:
    """``nudge worker`` processes that :meth:`strike` kills with -9, preferably in the middle of a job."""

    def __init__(self, procs, redis, count: int = 2):
        self.procs = procs
        self.redis = redis
        self.live = [procs.start("worker") for _ in range(count)]
        self.died = 0  # workers that exited without being killed

    def _busy(self) -> set[int]:
        """Pids of the workers RQ lists as running a job (a worker that outlived FLUSHALL is not listed)."""
        pids = set()
        for key in self.redis.scan_iter("rq:worker:*", _type="HASH"):
            pid, state = self.redis.hmget(key, "pid", "state")
            if pid and state == b"busy":
                pids.add(int(pid))
        return pids

    def _replace(self, proc) -> None:
        self.live[self.live.index(proc)] = self.procs.start("worker")

    def revive(self) -> None:
        for proc in list(self.live):
            if proc.poll() is not None:
                self.died += 1
                self._replace(proc)

    def strike(self) -> None:
        busy = self._busy()
        ready = [p for p in self.live if self.procs.age(p) >= (MIN_AGE if p.pid in busy else 3 * MIN_AGE)]
        if ready:
            victim = max(ready, key=lambda p: (p.pid in busy, self.procs.age(p)))
            self.procs.kill(victim)
            self._replace(victim)


def _retries(app) -> int:
    """Sends that failed and were put back for a later attempt."""
    with app.app_context():
        session = get_session()
        n = session.scalar(select(func.count()).where(MessageStatusChange.status == "pending"))
        session.rollback()
    return n


def _retried_then_sent(app) -> int:
    with app.app_context():
        session = get_session()
        retried = select(MessageStatusChange.message_id).where(MessageStatusChange.status == "pending")
        n = session.scalar(select(func.count()).where(Message.status == "sent", Message.id.in_(retried)))
        session.rollback()
    return n


@pytest.mark.timeout(600)
def test_journey_survives_kill_9_flushall_and_smtp_outage(app, client, smtp_server, processes):
    install_series(app)
    key = api_key(app)
    procs = processes(**SETTINGS, SMTP_CONNECTIONS=CONNECTIONS)
    scheduler = procs.start("scheduler")
    redis = get_queue(app).redis
    workers = Workers(procs, redis)
    emails = [f"c{i:04d}@example.com" for i in range(CONTACTS)]
    for chunk in (emails[: CONTACTS // 2], emails[CONTACTS // 2 :]):
        response = client.post(
            "/api/v1/events/batch",
            headers={"Authorization": f"Bearer {key}"},
            json={"events": [{"contact": {"email": e}, "event": "signup.completed"} for e in chunk]},
        )
        assert response.status_code == 202, response.json

    flushed = back = False
    outage_retries = None
    state: dict[str, int] = {}
    started = time.monotonic()
    for polls in itertools.count():
        assert time.monotonic() < started + 480, f"the journey did not finish: {state}\n{procs.tail()}"
        time.sleep(POLL)
        workers.revive()
        state = counts(app)
        if polls % 10 == 0:  # shown when the test fails
            print(f"{time.monotonic() - started:5.1f}s kills={procs.kills} smtp={len(smtp_server.messages)} {state}")
        if procs.kills < MAX_KILLS:
            workers.strike()
        arrived = len(smtp_server.messages)
        if not flushed and arrived >= CONTACTS // 2:
            redis.flushall()  # every queued job is gone; the database still knows
            procs.kill(scheduler)  # and the scheduler dies too, perhaps between its leases and its enqueues
            scheduler = procs.start("scheduler")
            flushed = True
        if outage_retries is None and arrived >= CONTACTS:
            smtp_server.stop()
            outage_retries = _retries(app)
        if outage_retries is not None and not back and _retries(app) >= outage_retries + 20:
            smtp_server.start()  # a new server on the same port
            back = True
        finished = back and state["enrolments"] == CONTACTS and state["active"] == 0
        if finished and not state.get("pending") and not state.get("sending"):
            break

    statuses = assert_exactly_once(app, smtp_server, emails)
    assert workers.died == 0, f"{workers.died} workers exited on their own\n{procs.tail()}"
    assert procs.kills >= 5, "the run ended before the workers were killed often"
    # each kill strands at most the messages its worker was handing to SMTP, one per connection; the outage at most
    # one per connection of each worker. Never doubled nor lost: unknown ones are reported, not sent again
    bound = (procs.kills + len(workers.live)) * CONNECTIONS
    assert statuses.get("unknown", 0) <= bound, statuses
    unknown = [pair for pair, status in outbox(app).items() if status == "unknown"]
    print(
        f"{len(unknown)} unknown after {procs.kills} kills, {sum(received(smtp_server)[p] > 0 for p in unknown)} "
        "of them at the SMTP server (the others were killed between the stamp and DATA)"
    )
    assert _retried_then_sent(app) > 0, "no send failed during the SMTP outage and succeeded after it"
