"""Twilio's rate per sender number, kept by the outbox (``Channel.rate_limit``, ``NUDGE_TWILIO_RATE``).

On the engine's clock: a frozen clock sends exactly one burst and gives the rest their slots (pending again, no
attempt counted), advancing it releases the next ones, two worker processes together keep to the rate, another
number and another channel are not held up. Counted on what the local Twilio (and SMTP) server accepted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import time as dt_time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import select

from server.app import create_app
from server.engine.outbox import Delivery
from server.engine.pacing import Pacer
from server.engine.timeutil import next_local_time, to_dt
from server.models import Message, MessageStatusChange
from server.sdk import RateLimit

from ..servers import free_port, reap
from .test_sms_twilio import SENDER, _keys, db, make_contact, twilio_settings

RATE = 2  # messages a second from one number: a burst of 2 at one instant, then one every half second
OTHER = "+15017122662"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(config, twilio, live_port):
    return {**config, **twilio_settings(twilio, live_port), "TWILIO_RATE": RATE}


@pytest.fixture
def noon() -> int:
    """Noon in Los Angeles (the contacts' +1 415 numbers): outside the texts' quiet hours."""
    return next_local_time(int(time.time()), dt_time(12, 0), ZoneInfo("America/Los_Angeles"))


def queue_texts(app, count: int, first: int = 0, channel: str = "sms") -> list[int]:
    """*count* messages of *channel* to as many consenting contacts; their outbox row ids."""
    contacts = [
        make_contact(app, f"+1415555{2600 + first + i}", email=f"c{first + i}@example.com") for i in range(count)
    ]
    with db(app) as session:
        rows = [Message(key=f"pace:{next(_keys)}", contact_id=c, channel=channel, template="welcome") for c in contacts]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows]


def deliver(app, ids: list[int], now: int) -> int:
    with db(app) as session, Delivery(session, app, now=now) as delivery:
        return delivery.deliver(ids)


@contextlib.contextmanager
def app_with(config, clock, **settings):
    """Another app on the same database, Redis and clock, with *settings* changed (as set at its start)."""
    other = create_app({**config, **settings}, clock=clock)
    try:
        yield other
    finally:
        other.extensions["nudge.queue"].close()
        other.extensions["nudge.db"].dispose()


def rows(app, ids: list[int]) -> list[Message]:
    with db(app) as session:
        found = session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)).all()
        session.expunge_all()
        return list(found)


def test_a_frozen_clock_sends_one_burst_and_gives_the_rest_their_slots(app, twilio, noon):
    ids = queue_texts(app, 10)
    assert deliver(app, ids, noon) == RATE
    assert len(twilio.requests) == RATE  # Twilio was not asked for the others
    waiting = [m for m in rows(app, ids) if m.status == "pending"]
    assert len(waiting) == 10 - RATE and all(m.attempts == 0 for m in waiting)  # no attempt counted
    slots = sorted(m.next_attempt_at for m in waiting)
    assert slots == [to_dt(noon) + timedelta(seconds=0.5 * k) for k in range(1, 9)]  # one every 1/RATE s
    with db(app) as session:
        details = session.scalars(select(MessageStatusChange.detail).where(MessageStatusChange.status == "deferred"))
        assert list(details) == ["the provider's rate limit (2/s): waits its turn"] * 8

    assert deliver(app, ids, noon) == 0  # the same instant again: the number's burst is spent
    for second in range(1, 5):  # each second of the engine's clock releases the next two
        assert deliver(app, ids, noon + second) == RATE
        assert len(twilio.messages) == RATE * (second + 1)
    assert [m.status for m in rows(app, ids)] == ["sent"] * 10
    assert sorted(m["To"] for m in twilio.messages.values()) == sorted(f"+1415555{2600 + i}" for i in range(10))
    assert {m["From"] for m in twilio.messages.values()} == {SENDER}


def test_a_second_number_is_not_slowed_by_the_first(app, config, clock, twilio, noon):
    first = queue_texts(app, 4)
    second = queue_texts(app, 4, first=4)
    assert deliver(app, first, noon) == RATE
    with app_with(config, clock, TWILIO_FROM=OTHER) as other:  # the same instance, sending from another number
        assert deliver(other, second, noon) == RATE  # at the same instant: its own rate, untouched by the first's
        assert deliver(other, first, noon) == 0  # … which is spent for the number it sends from too
    assert Counter(m["From"] for m in twilio.messages.values()) == {SENDER: RATE, OTHER: RATE}


def test_other_channels_in_the_same_batch_are_not_held_up(app, twilio, smtp_server, noon):
    texts = queue_texts(app, 4)
    mails = queue_texts(app, 3, first=4, channel="email")
    assert deliver(app, texts + mails, noon) == RATE + 3  # one claimed batch: two texts and every email
    assert len(smtp_server.messages) == 3 and len(twilio.messages) == RATE
    assert [m.status for m in rows(app, mails)] == ["sent"] * 3


def test_no_limit_with_twilio_rate_0(app, config, clock, twilio, noon):
    ids = queue_texts(app, 5)
    with app_with(config, clock, TWILIO_RATE=0) as unpaced:
        assert deliver(unpaced, ids, noon) == 5
    assert len(twilio.messages) == 5


def test_a_messaging_service_without_a_number_is_not_paced(app, config, clock, twilio, noon):
    ids = queue_texts(app, 5)
    with app_with(config, clock, TWILIO_FROM=None, TWILIO_MESSAGING_SERVICE_SID="MG" + "0" * 32) as service:
        assert deliver(service, ids, noon) == 5
    assert {m.get("MessagingServiceSid") for m in twilio.messages.values()} == {"MG" + "0" * 32}


@pytest.mark.slow
def test_two_worker_processes_together_keep_to_the_rate(app, config, twilio, noon):
    ids = queue_texts(app, 10)
    env = {**os.environ, "PACE_CONFIG": json.dumps(config), "PYTHONUNBUFFERED": "1"}
    per_second = []
    for second in range(12):
        before = len(twilio.messages)
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.plugins.pace_worker", str(noon + second)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        try:
            errors = [worker.communicate(timeout=120)[1] for worker in workers]
        finally:
            for worker in workers:
                reap(worker)
        assert [worker.returncode for worker in workers] == [0, 0], b"".join(errors).decode()
        per_second.append(len(twilio.messages) - before)
        if len(twilio.messages) == 10:
            break
    assert max(per_second) <= RATE and per_second[0] == RATE  # never more than the number's rate in a second
    # nothing lost, nothing doubled: each text accepted once, each row sent once
    assert len(twilio.requests) == 10
    assert sorted(m["To"] for m in twilio.messages.values()) == sorted(f"+1415555{2600 + i}" for i in range(10))
    assert [m.status for m in rows(app, ids)] == ["sent"] * 10


def test_without_redis_each_process_keeps_its_own_limit_and_says_so_once(caplog):
    pacer = Pacer(redis.Redis(port=free_port(), socket_connect_timeout=1), "test")
    limit = RateLimit(key=SENDER, per_second=1)
    with caplog.at_level(logging.WARNING, logger="server.engine.pacing"):
        taken = [pacer.take("sms", limit, 1, 1000) for _ in range(3)]
    assert [t.allowed for t in taken] == [1, 0, 0] and taken[1].next_slot == 1001.0
    assert pacer.take("sms", limit, 2, 1001).allowed == 1
    assert len([r for r in caplog.records if "cannot be shared through Redis" in r.getMessage()]) == 1


def test_a_rate_limit_refuses_nonsense():
    with pytest.raises(ValueError, match="more than 0 messages per second"):
        RateLimit(key=SENDER, per_second=0)
    with pytest.raises(ValueError, match="burst is at least 1"):
        RateLimit(key=SENDER, per_second=1, burst=0)
