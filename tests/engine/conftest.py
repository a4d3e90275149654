"""Fixtures of the engine's tests: a real webhook receiver that verifies signatures."""

import base64
import secrets

import pytest

from ..plugins.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver():
    """A webhook receiver on a free port and its signing secret."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    server = WebhookReceiver(secret)
    server.start()
    yield server, secret
    server.stop()
