"""The plugin conformance suite, run against all four channels: the built-in email, SMS and webhook channels and
the example push plugin, each against a real local peer."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from nudge_example_push import PushChannel

from plugins.email_smtp import EmailChannel
from plugins.sms_twilio import SmsChannel
from plugins.webhook import WebhookChannel
from server.plugin_testing import ChannelConformance
from server.sdk import SendResult

from ..servers import SmtpServer, free_port
from .push_gateway import PushGateway, PushPeer
from .twilio_server import TwilioServer
from .webhook_receiver import WebhookReceiver


# -- email: a real SMTP server ---------------------------------------------------------------
class SmtpPeer:
    address = "conformance@example.com"

    def __init__(self, server: SmtpServer):
        self.server = server
        unreachable = f"smtp://127.0.0.1:{free_port()}?timeout=5"
        self.settings = {
            "SMTP_URL": server.url,
            "MAIL_FROM": "Conformance <suite@acme.example>",
            "POSTAL_ADDRESS": "1 Main Street",
        }
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


# -- sms: the local server speaking Twilio's API ---------------------------------------------
class TwilioPeer:
    address = "+14155552671"

    def __init__(self, server: TwilioServer):
        self.server = server
        self.settings = {
            "TWILIO_API_BASE": server.url,
            "TWILIO_ACCOUNT_SID": server.account_sid,
            "TWILIO_AUTH_TOKEN": server.auth_token,
            "TWILIO_FROM": "+15017122661",
            "TWILIO_TIMEOUT": 5,
        }
        self.unreachable_settings = {**self.settings, "TWILIO_API_BASE": f"http://127.0.0.1:{free_port()}"}

    def seen_ids(self) -> list[str]:
        return list(self.server.messages)  # the SIDs of the messages Twilio created

    @contextmanager
    def failing(self, permanent: bool):
        for _ in range(20):
            self.server.reply_next(400, 21211, "Invalid 'To' Phone Number") if permanent else self.server.reply_next(
                503, None, "Service Unavailable"
            )
        try:
            yield
        finally:
            self.server.replies.clear()


class TestSmsConformance(ChannelConformance):
    channel_class = SmsChannel
    provider_sees_key = False  # Twilio's Messages API takes no idempotency id: each send is a new message

    @pytest.fixture
    def peer(self, twilio):
        return TwilioPeer(twilio)


# -- webhook: a receiver that verifies each signature with the standardwebhooks library -------------
class ReceiverPeer:
    address = "conformance"  # addresses nobody: the endpoint is the template

    def __init__(self, receiver: WebhookReceiver, secret: str):
        self.receiver = receiver
        self.settings = {"WEBHOOK_ALLOW": "127.0.0.1", "WEBHOOK_TIMEOUT": 5}
        self.unreachable_settings = self.settings
        self.endpoint = {"url": f"{receiver.url}/hook", "secrets": [secret]}
        self.unreachable_endpoint = {"url": f"http://127.0.0.1:{free_port()}/hook", "secrets": [secret]}
        self.refused: set[int] = set()

    def seen_ids(self) -> list[str]:
        return [
            r.headers["webhook-id"]
            for i, r in enumerate(self.receiver.received)
            if i not in self.refused and r.verified_by
        ]

    @contextmanager
    def failing(self, permanent: bool):
        start = len(self.receiver.received)
        for _ in range(20):
            self.receiver.answer_next(400 if permanent else 503)
        try:
            yield
        finally:
            self.refused.update(range(start, len(self.receiver.received)))
            self.receiver.answers.clear()


class TestWebhookConformance(ChannelConformance):
    channel_class = WebhookChannel

    @pytest.fixture
    def peer(self):
        secret = "whsec_" + base64.b64encode(b"conformance-secret-0123456789").decode()
        receiver = WebhookReceiver(secret).start()
        yield ReceiverPeer(receiver, secret)
        receiver.stop()


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
    events = activity_events = ()
    opt_out_event = None

    def send(self, message):
        url = urlsplit(self.config["PUSH_GATEWAY_URL"])
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        try:
            conn.request("POST", "/v1/push", b"{}", {"Idempotency-Key": uuid.uuid4().hex})
            return SendResult(provider_id=json.loads(conn.getresponse().read()).get("id"))
        finally:
            conn.close()


@pytest.mark.parametrize(
    "check",
    [
        "test_same_key_reaches_the_provider_with_the_same_id",
        "test_unreachable_provider_is_a_retryable_channel_error",
        "test_temporary_failure_is_a_retryable_channel_error",
    ],
)
def test_the_suite_catches_a_sloppy_channel(check):
    class Suite(ChannelConformance):
        channel_class = _Sloppy

    gateway, suite = PushGateway().start(), Suite()
    try:
        with pytest.raises((AssertionError, OSError, pytest.fail.Exception)):
            getattr(suite, check)(PushPeer(gateway))
    finally:
        suite.close_instances()
        gateway.stop()


def test_the_plugin_guide_shows_the_example_package_as_it_is():
    root = Path(__file__).resolve().parents[2]
    guide = (root / "docs" / "plugins.md").read_text()
    example = root / "examples" / "nudge-example-push"
    assert f"```python\n{(example / 'nudge_example_push' / '__init__.py').read_text()}```" in guide
    assert f"```toml\n{(example / 'pyproject.toml').read_text()}```" in guide
