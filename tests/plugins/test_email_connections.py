"""One worker sends email over several SMTP connections at once (``NUDGE_SMTP_CONNECTIONS``), at most
``NUDGE_SMTP_DOMAIN_CONNECTIONS`` of them to one recipient domain, each message still once, as the receiving
server (aiosmtpd) sees it: its sessions, and how many of them were inside a mail transaction at the same time."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from server.app import create_app
from server.config import ConfigError
from server.db import get_session
from server.engine.outbox import deliver
from server.models import Message, MessageStatusChange

from ..helpers import pending_emails
from ..servers import free_port

#: how long the server keeps a transaction open waiting for others to overlap it (it never waits on a clock)
OVERLAP_WAIT = 10.0


class Overlapping:
    """Counts transactions open at once, overall and per recipient domain; a DATA waits (up to
    :data:`OVERLAP_WAIT`) for *wanted* transactions to be open together, so overlap shows whenever it can happen."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.open: Counter[str] = Counter()
        self.most = 0
        self.most_per_domain = 0
        self.peers: set[tuple[str, int]] = set()
        self.recipients: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.crowd: asyncio.Event | None = None

    async def handle_DATA(self, server, session, envelope):
        domain = envelope.rcpt_tos[0].rpartition("@")[2]
        with self.lock:
            self.peers.add(session.peer)
            self.open[domain] += 1
            total = sum(self.open.values())
            self.most = max(self.most, total)
            self.most_per_domain = max(self.most_per_domain, self.open[domain])
            if self.crowd is None:
                self.crowd = asyncio.Event()
            crowd = self.crowd
            if total >= self.wanted:
                crowd.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(crowd.wait(), OVERLAP_WAIT)
        with self.lock:
            self.open[domain] -= 1
            self.recipients.update(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def server():
    def start(wanted: int) -> tuple[Overlapping, str]:
        handler = Overlapping(wanted)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return handler, f"smtp://127.0.0.1:{port}"

    started: list[Controller] = []
    yield start
    for controller in started:
        controller.stop()


def _deliver(config, url: str, addresses: list[str], **settings) -> list[int]:
    app = create_app({**config, "SMTP_URL": url, **settings})
    try:
        with app.app_context():
            session = get_session()
            ids = pending_emails(session, addresses)
            assert deliver(session, app, ids) == len(addresses)
            assert set(session.scalars(select(Message.status))) == {"sent"}
            assert session.scalars(select(MessageStatusChange.status)).all() == ["sent"] * len(addresses)
            return ids
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()


def test_one_worker_sends_over_several_connections_at_once(config, server):
    handler, url = server(wanted=3)
    addresses = [f"r{i}@example.com" for i in range(12)] + [f"s{i}@example.org" for i in range(12)]
    _deliver(config, url, addresses, SMTP_CONNECTIONS=3, SMTP_DOMAIN_CONNECTIONS=0)
    assert handler.most == 3  # three transactions were open together, never more
    assert len(handler.peers) == 3  # over three sessions, each reused
    assert handler.recipients == Counter(addresses)  # every message once


def test_at_most_the_per_domain_limit_carries_mail_to_one_domain(config, server):
    handler, url = server(wanted=2)
    addresses = [f"r{i}@example.com" for i in range(8)] + [f"s{i}@example.org" for i in range(8)]
    _deliver(config, url, addresses, SMTP_CONNECTIONS=4, SMTP_DOMAIN_CONNECTIONS=1)
    assert handler.most_per_domain == 1
    assert handler.most == 2  # one per domain, both domains at once
    assert handler.recipients == Counter(addresses)


def test_by_default_a_worker_sends_over_four_connections(config, server):
    handler, url = server(wanted=4)
    addresses = [f"r{i}@example.com" for i in range(12)]
    config = {k: v for k, v in config.items() if k not in ("SMTP_CONNECTIONS", "SMTP_DOMAIN_CONNECTIONS")}
    _deliver(config, url, addresses)
    assert (handler.most, len(handler.peers)) == (4, 4)  # all four to one domain: the per-domain default is 4
    assert handler.recipients == Counter(addresses)


def test_one_connection_sends_one_message_at_a_time(config, server):
    handler, url = server(wanted=1)
    addresses = [f"r{i}@example.com" for i in range(3)]
    _deliver(config, url, addresses, SMTP_CONNECTIONS=1)
    assert (handler.most, len(handler.peers)) == (1, 1)
    assert handler.recipients == Counter(addresses)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"SMTP_CONNECTIONS": 0}, "SMTP_CONNECTIONS"),
        ({"SMTP_CONNECTIONS": 65}, "SMTP_CONNECTIONS"),
        ({"SMTP_DOMAIN_CONNECTIONS": -1}, "SMTP_DOMAIN_CONNECTIONS"),
        ({"SMTP_CONNECTIONS": "many"}, "SMTP_CONNECTIONS"),
    ],
)
def test_a_bad_number_of_connections_is_a_start_up_error_naming_the_variable(config, settings, problem):
    with pytest.raises(ConfigError, match=problem):
        create_app({**config, **settings})
