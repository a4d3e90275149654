"""Hostile input to the built-in plugins' endpoints, past their bounds: a chunked body beyond the email hooks'
limit, a webhook timestamp that is not plain digits, an inbound SMS longer than any Twilio sends."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from plugins.webhook import signing

from .test_hostile_input import EMAIL_SECRET, twilio_post, written
from .test_sms_twilio import PHONE, events, make_contact, twilio_settings
from .test_webhook import PAYLOAD, SECRET, counts

EMAIL_LIMIT = 2 * 1024 * 1024


@pytest.fixture
def config(config, twilio, live_port):
    return {
        **config,
        **twilio_settings(twilio, live_port),
        "EMAIL_WEBHOOK_SECRET": EMAIL_SECRET,
        "MAIL_FROM": "news@example.com",
        "UNSUBSCRIBE_MAILTO": "unsubscribe@example.com",
    }


# -- email hooks: a chunked body -----------------------------------------------------------------
def post_chunked(port: int, path: str, body: bytes, content_type: str = "application/json"):
    """*body* POSTed over real HTTP with ``Transfer-Encoding: chunked`` (no Content-Length); (status, type, JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        headers = {"Content-Type": content_type, "Authorization": f"Bearer {EMAIL_SECRET}"}
        conn.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        conn.close()


def _bounces(padding: int) -> bytes:
    report = json.dumps({"type": "bounce", "email": "ann@example.com"}).encode()
    return b"[" + report + b" " * padding + b"]"


@pytest.mark.parametrize("path", ["/hooks/email/bounce", "/hooks/email/unsubscribe"])
def test_a_chunked_body_past_the_email_hooks_limit_is_a_413(app, live_app, live_port, path):
    """Without a Content-Length the limit was not checked: the body was cut at 1 MB and read as a broken report."""
    status, kind, answer = post_chunked(live_port, path, _bounces(EMAIL_LIMIT))
    assert (status, kind) == (413, "application/problem+json"), answer
    assert str(EMAIL_LIMIT) in answer["detail"]
    assert written(app) == (0, 0)


def test_a_chunked_body_within_the_email_hooks_limit_is_read_whole(app, live_app, live_port):
    """1.5 MB is within the documented 2 MB: it was cut at 1 MB (the app's limit for other routes)."""
    status, _, answer = post_chunked(live_port, "/hooks/email/bounce", _bounces(1536 * 1024))
    assert status == 200, answer
    assert answer["reports"] == 1 and written(app)[0] == 1


def test_a_body_within_the_email_hooks_limit_with_a_content_length_is_read_whole(app, client):
    """With a Content-Length over 1 MB, Flask's own limit answered an HTML 413."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {EMAIL_SECRET}"}
    response = client.post("/hooks/email/bounce", data=_bounces(1536 * 1024), headers=headers)
    assert response.status_code == 200, response.data[:300]
    assert response.json["reports"] == 1


# -- inbound webhooks: the timestamp -------------------------------------------------------------
def _stamps(now: int) -> list[str]:
    digits = str(now)
    return [
        f" {digits}",
        f"{digits} ",
        f"+{digits}",
        f"{digits[:1]}_{digits[1:]}",
        digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        digits.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        "0" * 5000 + digits,
    ]


@pytest.mark.parametrize("index", range(7))
def test_a_webhook_timestamp_other_than_ascii_digits_is_a_bad_signature(index):
    """``int()`` took a space, a sign, an underscore and any script's digits: a signature over another text."""
    now = int(time.time())
    stamp = _stamps(now)[index]
    body = json.dumps(PAYLOAD).encode()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": stamp,
        "webhook-signature": signing.signature(SECRET, "msg_1", now, body),
    }
    with pytest.raises(signing.InvalidSignature, match="webhook-timestamp"):
        signing.verify(SECRET, headers, body, now=now)


def test_a_webhook_timestamp_with_a_sign_is_refused_over_http(app, client, source):
    now = int(time.time())
    body = json.dumps(PAYLOAD).encode()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": f"+{now}",
        "webhook-signature": signing.signature(SECRET, "msg_1", now, body),
        "Content-Type": "application/json",
    }
    response = client.post("/hooks/in/shop", data=body, headers=headers)
    assert response.status_code == 401 and "webhook-timestamp" in response.json["detail"]
    assert counts(app) == (0, 0)


def test_a_webhook_timestamp_of_ascii_digits_is_taken():
    now = int(time.time())
    body = json.dumps(PAYLOAD).encode()
    headers = signing.sign("msg_1", now, body, [SECRET])
    assert signing.verify(SECRET, headers, body, now=now) == "msg_1"


# -- Twilio: the length of an incoming text ------------------------------------------------------
def test_an_incoming_text_longer_than_twilio_sends_is_a_400_and_stores_nothing(app, twilio):
    make_contact(app, PHONE)
    params = [("From", PHONE), ("Body", "STOP " + "x" * 5000), ("MessageSid", "SM9")]
    response = twilio_post(app, twilio, "/sms/twilio/inbound", params)
    assert response.status_code == 400 and b"Body" in response.data
    assert events(app, "sms.opted_out") == [] and events(app, "sms.replied") == []


def test_an_incoming_text_of_twilios_longest_is_taken(app, twilio):
    make_contact(app, PHONE)
    params = [("From", PHONE), ("Body", "ü" * 1600), ("MessageSid", "SM10")]
    assert twilio_post(app, twilio, "/sms/twilio/inbound", params).status_code == 200
    [event] = events(app, "sms.replied")
    assert event.props["body"] == "ü" * 1600
