"""The plugin conformance suite, run against the built-in email channel and the example push plugin."""
from __future__ import annotations

import http.client
import json
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from nudge_example_push import PushChannel

from plugins.email_smtp import EmailChannel
from server.plugin_testing import ChannelConformance
from server.sdk import SendResult

from ..servers import SmtpServer, free_port
from .push_gateway import PushGateway, PushPeer


# -- email: a real SMTP server ---------------------------------------------------------------
class SmtpPeer:
    address = "conformance@example.com"

    def __init__(self, server: SmtpServer):
        self.server = server
        unreachable = f"smtp://127.0.0.1:{free_port()}?timeout=5"
        self.settings = {"SMTP_URL": server.url,
                         "MAIL_FROM": "Conformance <suite@acme.example>", "POSTAL_ADDRESS": "1 Main Street"}
        self.unreachable_settings = {**self.settings, "SMTP_URL": unreachable}

    def seen_ids(self) -> list[str]:
        return [msg["Message-ID"] for msg in self.server.messages]

    @contextmanager
    def failing(self, permanent: bool):
        self.server.handler.reject_with = "550 5.1.1 no such user" if permanent else "451 4.3.0 try later"
        try:
            yield
        finally:
            self.server.handler.reject_with = None


class TestEmailConformance(ChannelConformance):
    channel_class = EmailChannel

    @pytest.fixture
    def peer(self, smtp_server):
        return SmtpPeer(smtp_server)


# -- push: a local gateway that de-duplicates by Idempotency-Key --------------------------------
class TestPushConformance(ChannelConformance):
    channel_class = PushChannel

    @pytest.fixture
    def peer(self):
        gateway = PushGateway().start()
        yield PushPeer(gateway)
        gateway.stop()

    def test_a_batch_keeps_one_connection_to_the_gateway(self, peer):
        channel = self.make_channel(peer.settings)
        with channel.batch():
            for i in range(4):
                self._send(channel, peer, f"k{i}")
        assert peer.gateway.connections == 1 and len(peer.seen_ids()) == 4


# -- the suite itself can fail ------------------------------------------------------------------
class _Sloppy(PushChannel):
    """Sends a fresh id on every attempt and lets network and HTTP errors through unclassified."""

    name = "sloppy"

    def send(self, message):
        url = urlsplit(self.config["PUSH_GATEWAY_URL"])
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        try:
            conn.request("POST", "/v1/push", b"{}", {"Idempotency-Key": uuid.uuid4().hex})
            return SendResult(provider_id=json.loads(conn.getresponse().read()).get("id"))
        finally:
            conn.close()


@pytest.mark.parametrize("check", ["test_same_key_reaches_the_provider_with_the_same_id",
                                   "test_unreachable_provider_is_a_retryable_channel_error",
                                   "test_temporary_failure_is_a_retryable_channel_error"])
def test_the_suite_catches_a_sloppy_channel(check):
    class Suite(ChannelConformance):
        channel_class = _Sloppy

    gateway = PushGateway().start()
    try:
        with pytest.raises((AssertionError, OSError, pytest.fail.Exception)):
            getattr(Suite(), check)(PushPeer(gateway))
    finally:
        gateway.stop()


def test_the_plugin_guide_shows_the_example_package_as_it_is():
    root = Path(__file__).resolve().parents[2]
    guide = (root / "docs" / "plugins.md").read_text()
    example = root / "examples" / "nudge-example-push"
    assert f"```python\n{(example / 'nudge_example_push' / '__init__.py').read_text()}```" in guide
    assert f"```toml\n{(example / 'pyproject.toml').read_text()}```" in guide
