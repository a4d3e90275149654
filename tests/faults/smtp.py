"""An SMTP server that can hold a message at DATA: the worker sending it is then stuck in the middle of the hand-over,
where a fault test can kill it, or take Redis away from under it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.servers import _Collector


class HoldingSmtp(_Collector):
    """While ``holding``, each DATA is taken (the server has it, as a server that queued it before answering would),
    and its answer waits: the client does not know yet whether it was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        #: set once a DATA is being held
        self.held = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        status = await super().handle_DATA(server, session, envelope)
        while self.holding:
            self.held.set()
            await asyncio.sleep(0.05)
        return status


@pytest.fixture
def holding_smtp(smtp_server):
    """The test's SMTP server, restarted on its port with a :class:`HoldingSmtp` handler."""
    smtp_server.stop()
    smtp_server.handler = HoldingSmtp()
    return smtp_server.start()
