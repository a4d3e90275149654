"""Webhooks: signed outbound calls to a real receiver verifying with ``standardwebhooks``; signed inbound payloads."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import ssl
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook

from server.config import ConfigError
from server.db import get_session
from server.models import Contact, Event, InboundSource, WebhookEndpoint
from server.sdk import ChannelError, OutboundMessage

from . import self_signed_cert
from .webhook_receiver import WebhookReceiver


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


SECRET, OLD, NEW = new_secret(), new_secret(), new_secret()
_keys = itertools.count()


@pytest.fixture
def config(config):
    return {**config, "WEBHOOK_ALLOW": "127.0.0.1", "WEBHOOK_TIMEOUT": "1"}


@pytest.fixture
def receiver():
    server = WebhookReceiver(SECRET, OLD, NEW).start()
    yield server
    server.stop()


@contextlib.contextmanager
def db(app):
    with app.app_context():
        yield get_session()


def endpoint(app, url: str, secrets=(SECRET,), name: str = "crm") -> str:
    with db(app) as session:
        session.add(WebhookEndpoint(name=name, url=url, secrets=list(secrets)))
        session.commit()
    return name


def channel(app, **overrides):
    return app.extensions["nudge.plugins"].channels["webhook"]({**app.config, **overrides})


def message(name: str = "crm", key: str | None = None, **data) -> OutboundMessage:
    return OutboundMessage(
        key=key or f"msg-{next(_keys)}",
        channel="webhook",
        template=name,
        to="",
        data=data or {"type": "contact.tagged", "contact": {"email": "ana@example.com"}, "event": {"tag": "vip"}},
    )


def send(app, msg: OutboundMessage, **overrides):
    with app.app_context():
        return channel(app, **overrides).send(msg)


def failure(app, msg: OutboundMessage, **overrides) -> ChannelError:
    with pytest.raises(ChannelError) as info:
        send(app, msg, **overrides)
    return info.value


# -- outbound ------------------------------------------------------------------------------------
def test_a_call_is_signed_per_standard_webhooks(app, receiver):
    name = endpoint(app, receiver.url + "/in/nudge?team=7")
    msg = message(name)
    assert send(app, msg).provider_id == msg.key
    [got] = receiver.received
    assert got.path == "/in/nudge?team=7"
    assert got.verified_by == [SECRET]
    assert got.headers["webhook-id"] == msg.key
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert got.headers["content-type"] == "application/json"
    body = json.loads(got.body)
    assert body["type"] == "contact.tagged"
    assert body["data"] == {"contact": {"email": "ana@example.com"}, "event": {"tag": "vip"}}


def test_the_webhook_id_is_stable_across_retries(app, receiver):
    name = endpoint(app, receiver.url + "/hook")
    msg = message(name)
    receiver.answer_next(503)
    error = failure(app, msg)
    assert not error.permanent
    send(app, msg)
    first, retry = receiver.received
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == msg.key
    assert first.verified_by == retry.verified_by == [SECRET]


def test_during_a_rotation_every_secret_signs(app, receiver):
    name = endpoint(app, receiver.url + "/hook", secrets=(OLD, NEW))
    send(app, message(name))
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verified_by == [OLD, NEW]  # a receiver holding either secret accepts


def test_410_disables_the_endpoint(app, receiver):
    name = endpoint(app, receiver.url + "/hook")
    receiver.answer_next(410, b"gone")
    error = failure(app, message(name))
    assert error.permanent and "disabled" in error.message
    with db(app) as session:
        row = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.name == name))
        assert row.disabled_at is not None and "410" in row.disabled_reason
    again = failure(app, message(name))
    assert again.permanent and "is disabled" in again.message
    assert receiver.hits["/hook"] == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(app, receiver, status):
    name = endpoint(app, receiver.url + "/hook")
    receiver.answer_next(status, Location=receiver.url + "/target")
    error = failure(app, message(name))
    assert error.permanent and "redirects are not followed" in error.message
    assert receiver.hits["/target"] == 0


@pytest.mark.parametrize(
    "status, permanent",
    [
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (422, True),
        (408, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
        (504, False),
    ],
)
def test_answers_are_classified(app, receiver, status, permanent):
    name = endpoint(app, receiver.url + "/hook")
    receiver.answer_next(status, b"nope")
    error = failure(app, message(name))
    assert error.permanent is permanent and str(status) in error.message


def test_retry_after_is_passed_on(app, receiver):
    name = endpoint(app, receiver.url + "/hook")
    receiver.answer_next(429, Retry_After="30")
    assert failure(app, message(name)).retry_after == 30.0


def test_the_schedule_is_the_standard_webhooks_one(app):
    cls = app.extensions["nudge.plugins"].channels["webhook"]
    assert cls.retry_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert cls.idempotent and cls.consent is None and cls.address_field is None and not cls.counts_toward_cap


def test_a_slow_endpoint_times_out_and_is_retried(app, receiver):
    name = endpoint(app, receiver.url + "/slow")
    receiver.answer_next(hang=True)
    error = failure(app, message(name))  # NUDGE_WEBHOOK_TIMEOUT=1
    assert not error.permanent and "did not answer within 1 s" in error.message
    # it may have arrived, and receivers de-duplicate by webhook-id: the engine retries idempotent channels
    assert error.ambiguous and channel(app).idempotent


def test_a_huge_answer_is_read_only_up_to_the_cap(app, receiver):
    name = endpoint(app, receiver.url + "/hook")
    receiver.answer_next(500, b"x" * 5_000_000)
    error = failure(app, message(name))
    assert not error.permanent and len(error.message) < 500


def test_a_batch_reuses_one_connection(app, receiver):
    name = endpoint(app, receiver.url + "/hook")
    webhook = channel(app)
    with app.app_context(), webhook.batch():
        for _ in range(3):
            webhook.send(message(name))
    assert len(receiver.received) == 3 and receiver.connections == 1


def test_unknown_unsigned_or_malformed_endpoints_fail_permanently(app, receiver):
    assert "no webhook endpoint named 'nope'" in failure(app, message("nope")).message
    endpoint(app, receiver.url + "/hook", secrets=(), name="bare")
    assert "no signing secret" in failure(app, message("bare")).message
    for name, url in (("ftp", "ftp://127.0.0.1/hook"), ("port", "http://127.0.0.1:99999/")):
        endpoint(app, url, name=name)
        error = failure(app, message(name))
        assert error.permanent and "no valid http(s) URL" in error.message
    assert receiver.received == []


# -- SSRF ----------------------------------------------------------------------------------------
def _foreign(connections, app) -> list:
    """Connections made other than to the test database."""
    db_port = make_url(app.config["DATABASE_URL"]).port
    return [a for a in connections if not (isinstance(a, tuple) and a[1] == db_port)]


@pytest.mark.parametrize(
    "url",
    [
        "{receiver}/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://0.0.0.0:{port}/",
        "http://224.0.0.1/",
        "http://100.64.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
    ],
)
def test_non_public_destinations_are_refused_without_connecting(app, receiver, connections, url):
    name = endpoint(app, url.format(receiver=receiver.url, port=receiver.port))
    error = failure(app, message(name), WEBHOOK_ALLOW="")
    assert error.permanent and "NUDGE_WEBHOOK_ALLOW" in error.message
    assert _foreign(connections, app) == [] and receiver.connections == 0


@pytest.mark.parametrize("allow", ["127.0.0.0/8", "localhost"])
def test_allow_listed_destinations_are_called(app, receiver, allow):
    name = endpoint(app, f"http://localhost:{receiver.port}/hook")
    send(app, message(name), WEBHOOK_ALLOW=allow + ",::1")
    [got] = receiver.received
    assert got.verified_by == [SECRET]


def test_the_checked_address_is_called_with_the_name_as_host(app, receiver, connections):
    name = endpoint(app, f"http://localhost:{receiver.port}/hook")
    send(app, message(name), WEBHOOK_ALLOW="localhost")
    [got] = receiver.received
    assert got.headers["host"] == f"localhost:{receiver.port}"
    # connected to an address resolved (and checked) once, never to the name again
    called = list(_foreign(connections, app))
    assert called and all(a[0] in ("127.0.0.1", "::1") for a in called)


@pytest.fixture
def tls_receiver(tmp_path, request):
    """A receiver speaking HTTPS with a certificate for the given name (a self-signed CA)."""
    cert, key = self_signed_cert(tmp_path, request.param)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = WebhookReceiver(SECRET, tls=context).start()
    server.ca_file = str(cert)
    yield server
    server.stop()


@pytest.mark.parametrize("tls_receiver", ["localhost"], indirect=True)
def test_https_checks_the_certificate_against_the_name_not_the_address(app, tls_receiver, connections):
    name = endpoint(app, f"https://localhost:{tls_receiver.port}/hook")
    send(app, message(name), WEBHOOK_ALLOW="localhost", WEBHOOK_CA_FILE=tls_receiver.ca_file)
    [got] = tls_receiver.received
    assert got.verified_by == [SECRET]
    assert all(a[0] in ("127.0.0.1", "::1") for a in _foreign(connections, app))


@pytest.mark.parametrize("tls_receiver", ["other.example"], indirect=True)
def test_https_refuses_a_certificate_for_another_name(app, tls_receiver):
    name = endpoint(app, f"https://localhost:{tls_receiver.port}/hook")
    error = failure(app, message(name), WEBHOOK_ALLOW="localhost", WEBHOOK_CA_FILE=tls_receiver.ca_file)
    assert "TLS check of localhost failed" in error.message and not error.ambiguous
    assert tls_receiver.received == []


@pytest.mark.parametrize("allow", ["10.0.0.0/33", "http://10.0.0.1/", "*.internal"])
def test_a_malformed_allow_list_stops_start_up(start_up, allow):
    with pytest.raises(ConfigError, match="NUDGE_WEBHOOK_ALLOW"):
        start_up(WEBHOOK_ALLOW=allow)


# -- inbound -------------------------------------------------------------------------------------
MAPPING = {
    "event": "type",
    "event_prefix": "shop.",
    "email": "data.customer.email",
    "external_id": "data.customer.id",
    "props": "data.order",
    "occurred_at": "created_at",
}
PAYLOAD = {
    "type": "order_paid",
    "created_at": "2026-11-20T09:30:00Z",
    "data": {"customer": {"email": "bo@example.com", "id": "cus_42"}, "order": {"total": 120, "currency": "EUR"}},
}


def post(
    client,
    payload,
    *,
    secret: str = SECRET,
    msg_id: str = "msg_2Kx",
    at: datetime | None = None,
    source: str = "shop",
    headers: dict | None = None,
):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    if headers is None:
        at = at or datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        }
    return client.post(f"/hooks/in/{source}", data=body, headers={**headers, "Content-Type": "application/json"})


def counts(app) -> tuple[int, int]:
    with db(app) as session:
        return (
            session.scalar(select(func.count()).select_from(Contact)),
            session.scalar(select(func.count()).select_from(Event)),
        )


def test_a_signed_payload_becomes_an_event(app, client, source):
    response = post(client, PAYLOAD)
    assert response.status_code == 202, response.json
    with db(app) as session:
        event = session.get(Event, response.json["id"])
        contact = session.get(Contact, event.contact_id)
        assert (event.name, event.props, event.source) == (
            "shop.order_paid",
            {"total": 120, "currency": "EUR"},
            "hook:shop",
        )
        assert event.occurred_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
        assert (contact.email, contact.external_id) == ("bo@example.com", "cus_42")


@pytest.mark.parametrize("case", ["wrong secret", "no headers", "too old", "from the future", "tampered"])
def test_a_badly_signed_payload_is_refused(app, client, source, case):
    if case == "wrong secret":
        response = post(client, PAYLOAD, secret=OLD)
    elif case == "no headers":
        response = post(client, PAYLOAD, headers={})
    elif case == "too old":
        response = post(client, PAYLOAD, at=datetime.now(UTC) - timedelta(minutes=10))
    elif case == "from the future":
        response = post(client, PAYLOAD, at=datetime.now(UTC) + timedelta(minutes=10))
    else:
        at = datetime.now(UTC)
        signed = {
            "webhook-id": "msg_t",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(SECRET).sign("msg_t", at, json.dumps(PAYLOAD)),
        }
        response = post(client, {**PAYLOAD, "type": "order_refunded"}, headers=signed)
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert counts(app) == (0, 0)


@pytest.mark.parametrize(
    "payload, field",
    [
        ("{not json", "payload"),
        ("[" * 2500, "payload"),
        (
            '{"type": "order_paid", "data": {"customer": {"email": "a\\udc00@example.com"}}}',
            "payload.data.customer.email",
        ),
        ([1, 2, 3], "payload"),
        ({**PAYLOAD, "data": {"order": {}}}, "contact"),
        ({**PAYLOAD, "type": "Order Paid!"}, "event"),
        ({k: v for k, v in PAYLOAD.items() if k != "type"}, "event"),
        ({**PAYLOAD, "data": {**PAYLOAD["data"], "order": [1]}}, "props"),
        ({**PAYLOAD, "created_at": "last tuesday"}, "occurred_at"),
    ],
)
def test_a_payload_that_does_not_fit_is_refused_whole(app, client, source, payload, field):
    response = post(client, payload)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert response.json["field"] == field
    assert counts(app) == (0, 0)


def test_a_mapping_path_step_that_is_a_digit_to_isdigit_only_finds_nothing(app, client):
    """``²`` is a digit to ``str.isdigit`` but not to ``int()``: the step finds nothing (it was a server error)."""
    with db(app) as session:
        session.add(InboundSource(name="odd", secret=SECRET, mapping={**MAPPING, "email": "data.list.\u00b2"}))
        session.commit()
    payload = {**PAYLOAD, "data": {"list": ["bo@example.com"], "order": {}}}  # no customer: the email path alone
    response = post(client, payload, source="odd")
    assert response.status_code == 422 and response.json["field"] == "contact"
    assert counts(app) == (0, 0)


def test_a_replayed_id_is_not_recorded_twice(app, client, source):
    assert post(client, PAYLOAD, msg_id="msg_once").status_code == 202
    again = post(client, PAYLOAD, msg_id="msg_once")
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert counts(app) == (1, 1)
    assert post(client, PAYLOAD, msg_id="msg_other").status_code == 202


def test_an_unknown_source_is_not_found(app, client, source):
    assert post(client, PAYLOAD, source="nope").status_code == 404
