"""Hostile input to the built-in plugins' public endpoints: a clear 4xx, nothing half-written, never a server error.

Inbound webhooks (``/hooks/in/<source>``), Twilio's callbacks (``/sms/twilio/…``) and the email hooks
(``/hooks/email/…``); NUL characters matter on PostgreSQL, which stores none in text.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from plugins.sms_twilio.keywords import read_keyword
from plugins.webhook import signing
from server.app import create_app
from server.db import get_session
from server.models import Event, Suppression

from .test_sms_twilio import PHONE, events, make_contact, twilio_settings
from .test_webhook import PAYLOAD, SECRET, counts


@pytest.fixture
def config(config, twilio, live_port):
    return {**config, **twilio_settings(twilio, live_port)}


# -- inbound webhooks ----------------------------------------------------------------------------
def hook(client, payload, msg_id: str = "msg_1"):
    body = json.dumps(payload).encode()
    stamp = int(time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signing.signature(SECRET, msg_id, stamp, body),
        "Content-Type": "application/json",
    }
    return client.post("/hooks/in/shop", data=body, headers=headers)


def refused(response, status: int, field: str | None = None) -> bool:
    fits = response.status_code == status and response.mimetype == "application/problem+json"
    return fits and (field is None or response.json["field"] == field)


def test_an_event_name_with_a_trailing_newline_is_refused(app, client, source):
    """``$`` matches before a final newline: ``shop.order_paid\\n`` was stored as an event name."""
    assert refused(hook(client, {**PAYLOAD, "type": "order_paid\n"}), 422, "event")
    assert counts(app) == (0, 0)


def test_an_event_name_longer_than_the_column_is_refused(app, client, source):
    """It was a server error on PostgreSQL (``events.name`` holds 128 characters)."""
    assert refused(hook(client, {**PAYLOAD, "type": "a" * 300}), 422, "event")
    assert counts(app) == (0, 0)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_occurred_at_beyond_the_utc_range_is_refused(app, client, source, stamp):
    """Valid ISO-8601 whose UTC time is before year 1 or after 9999 was a server error (OverflowError)."""
    assert refused(hook(client, {**PAYLOAD, "created_at": stamp}), 422, "occurred_at")
    assert counts(app) == (0, 0)


@pytest.mark.parametrize("order", [{"note": "a\x00b"}, {"a\x00": 1}, {"items": [{"sku": "\x00"}]}])
def test_a_nul_character_in_the_props_is_refused(app, client, source, order):
    """It was a server error on PostgreSQL (jsonb takes no ``\\u0000``) and stored as-is on SQLite."""
    payload = {**PAYLOAD, "data": {**PAYLOAD["data"], "order": order}}
    assert refused(hook(client, payload), 422, "props")
    assert counts(app) == (0, 0)


@pytest.mark.parametrize("msg_id", ["msg\x00x", "msg\tx", "m" * 201])
def test_a_webhook_id_that_cannot_be_a_receipt_is_refused(app, client, source, msg_id):
    """A NUL was a server error on PostgreSQL; past 255 characters ids were cut, so two different ids collided."""
    assert refused(hook(client, PAYLOAD, msg_id=msg_id), 401)
    assert counts(app) == (0, 0)


def test_a_long_webhook_id_within_the_limit_is_accepted(app, client, source):
    assert hook(client, PAYLOAD, msg_id="m" * signing.MAX_ID).status_code == 202


# -- Twilio --------------------------------------------------------------------------------------
def twilio_post(app, twilio, path: str, params: list[tuple[str, str]]):
    """*params* posted as Twilio posts them, signed for the URL the test client uses."""
    form = MultiDict(params)
    signature = RequestValidator(twilio.auth_token).compute_signature("http://localhost" + path, form)
    return app.test_client().post(path, data=form, headers={"X-Twilio-Signature": signature})


@pytest.mark.parametrize("body", ["ＳＴＯＰ", "𝐒𝐓𝐎𝐏", "S\u200bTOP", "\ufeffstop", "ｕｎｓｕｂｓｃｒｉｂｅ"])
def test_stop_in_look_alike_unicode_records_an_opt_out(app, twilio, body):
    """Full-width, mathematical or zero-width-split STOP was an ordinary reply: a missed opt-out."""
    contact_id = make_contact(app, PHONE)
    response = twilio_post(app, twilio, "/sms/twilio/inbound", [("From", PHONE), ("Body", body), ("MessageSid", "SM1")])
    assert response.status_code == 200
    [event] = events(app, "sms.opted_out")
    assert event.contact_id == contact_id and event.props["body"] == body
    assert events(app, "sms.replied") == []


@pytest.mark.parametrize("body", ["ｙｅｓ ｐｌｅａｓｅ", "stopover", "Ｓtopped"])
def test_look_alike_unicode_changes_no_ordinary_reply(body):
    assert read_keyword(body) is None


def test_a_nul_in_an_incoming_text_is_dropped_and_a_stop_still_counts(app, twilio):
    """It was a server error on PostgreSQL: the opt-out was lost (and Twilio's retries failed the same way)."""
    make_contact(app, PHONE)
    params = [("From", PHONE), ("Body", "STOP\x00"), ("MessageSid", "SM2")]
    assert twilio_post(app, twilio, "/sms/twilio/inbound", params).status_code == 200
    [event] = events(app, "sms.opted_out")
    assert event.props["body"] == "STOP"


@pytest.mark.parametrize(
    "path, params",
    [
        ("/sms/twilio/inbound", [("From", PHONE), ("Body", "hi"), ("MessageSid", "SM\x003")]),
        ("/sms/twilio/status", [("MessageSid", "SM\x004"), ("MessageStatus", "delivered")]),
        ("/sms/twilio/status", [("MessageSid", "SM5"), ("MessageStatus", "delivered\x00")]),
    ],
)
def test_a_nul_in_a_twilio_id_is_a_400(app, twilio, path, params):
    """It was a server error on PostgreSQL."""
    make_contact(app, PHONE)
    response = twilio_post(app, twilio, path, params)
    assert response.status_code == 400 and b"NUL" in response.data
    assert events(app, "sms.replied") == []


# -- email hooks ---------------------------------------------------------------------------------
EMAIL_SECRET = "hostile-secret-0123"


@pytest.fixture
def email_app(config):
    app = create_app(
        {
            **config,
            "EMAIL_WEBHOOK_SECRET": EMAIL_SECRET,
            "MAIL_FROM": "news@example.com",
            "UNSUBSCRIBE_MAILTO": "unsubscribe@example.com",
        }
    )
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


def email_post(app, path: str, body: str, content_type: str = "application/json"):
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {EMAIL_SECRET}"}
    return app.test_client().post(path, data=body, headers=headers)


def written(app) -> tuple[int, int]:
    with app.app_context():
        session = get_session()
        return (
            session.scalar(select(func.count()).select_from(Suppression)),
            session.scalar(select(func.count()).select_from(Event)),
        )


def test_deeply_nested_json_to_the_mailto_endpoint_is_a_422(email_app):
    """``request.get_json(silent=True)`` let the RecursionError through: a server error."""
    response = email_post(email_app, "/hooks/email/unsubscribe", "[" * 100_000)
    assert refused(response, 422, "subject")


@pytest.mark.parametrize(
    "body",
    [
        [{"type": "bounce", "email": "a@example.com"}, {"type": "bounce", "email": "b\x00@example.com"}],
        [{"type": "bounce", "email": "a@example.com"}, {"type": "bounce", "email": "b@example.com", "detail": "\x00"}],
        [{"type": "bounce", "email": "a@example.com", "message_id": "<x\x00@example.com>"}],
    ],
)
def test_a_bounce_batch_with_a_nul_is_refused_whole(email_app, body):
    """The first report was recorded, then the second was a server error on PostgreSQL: half-written."""
    response = email_post(email_app, "/hooks/email/bounce", json.dumps(body))
    assert refused(response, 422, "body") and "NUL" in response.json["detail"]
    assert written(email_app) == (0, 0)


def test_a_dsn_with_a_nul_in_the_recipient_is_refused(email_app):
    dsn = (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n--b\n'
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.com\n\n"
        "Final-Recipient: rfc822; a\x00@example.com\nAction: failed\nStatus: 5.1.1\n\n--b--\n"
    )
    assert refused(email_post(email_app, "/hooks/email/bounce", dsn, "message/rfc822"), 422, "body")
    assert written(email_app) == (0, 0)
