"""Fixtures for the channel plugins' peers: a live app server, Twilio, webhook receivers, a connection watch."""

from __future__ import annotations

import ipaddress
import sys
import threading

import pytest
from werkzeug.serving import make_server

from server.app import create_app

from ..servers import free_port
from . import POLL
from .twilio_server import TwilioServer

_watch = threading.local()


def _audit(event: str, args: tuple) -> None:
    if event != "socket.connect" or getattr(_watch, "log", None) is None:
        return
    address = args[1]
    _watch.log.append(address)
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and not ipaddress.ip_address(host.split("%")[0]).is_loopback:
        # a safety net: these tests never send a packet beyond this machine, even when the code under test is wrong
        raise ConnectionRefusedError(f"test watch: refused a connection to {address}")


sys.addaudithook(_audit)


@pytest.fixture
def connections():
    """Every ``socket.connect`` this thread makes during the test (non-loopback ones are refused)."""
    _watch.log = []
    yield _watch.log
    _watch.log = None


@pytest.fixture
def twilio():
    server = TwilioServer().start()
    yield server
    server.stop()


@pytest.fixture
def live_port():
    return free_port()


@pytest.fixture
def live_app(app, live_port):
    """The app served over real HTTP on 127.0.0.1 (its BASE_URL must name *live_port*)."""
    server = make_server("127.0.0.1", live_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), name="live-app", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{live_port}"
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def start_up(tmp_path):
    """``create_app`` on a throwaway SQLite database with extra settings, for tests of start-up errors.

    SQLite, whatever the backend: create_app stops before handing back the app, so nothing
    could close a database server connection it opened.
    """

    def build(**settings):
        return create_app(
            {
                "HOME": str(tmp_path),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'nudge.db'}",
                "SECRET_KEY": "test-secret-key-0123456789",
                "LOAD_ENTRY_POINTS": False,
                **settings,
            }
        )

    return build


@pytest.fixture
def dkim_key(tmp_path):
    """A fresh RSA key for DKIM: (PEM file, a ``dnsfunc`` for ``dkim.verify`` answering with its public key,
    the names it was asked for)."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    looked_up: list[bytes] = []

    def dnsfunc(name, timeout=5):
        looked_up.append(name)
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    return key_file, dnsfunc, looked_up


@pytest.fixture
def source(app):
    """The inbound webhook source ``shop``, with tests/plugins/test_webhook.py's secret and mapping."""
    from server.models import InboundSource

    from .test_webhook import MAPPING, SECRET, db

    with db(app) as session:
        session.add(InboundSource(name="shop", secret=SECRET, mapping=MAPPING))
        session.commit()
    return "shop"
