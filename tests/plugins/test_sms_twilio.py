"""SMS over Twilio, against a local server speaking Twilio's Messages API and calling the app back, signed."""

from __future__ import annotations

import contextlib
import itertools
import time
import xml.etree.ElementTree as ET
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from server.config import ConfigError
from server.db import get_session
from server.engine.outbox import Delivery
from server.engine.timeutil import next_local_time
from server.models import Consent, Contact, Event, Message, MessageStatusChange, Suppression, utcnow
from server.sdk import ChannelError, OutboundMessage

from ..helpers import api_key
from ..servers import free_port

SENDER = "+15017122661"
HELP_TEXT = "Acme alerts: 2 msgs/week. Reply STOP to opt out."
PHONE = "+14155552671"
_keys = itertools.count()


@pytest.fixture
def config(config, twilio, live_port):
    return {**config, **twilio_settings(twilio, live_port)}


def twilio_settings(twilio, live_port: int) -> dict:
    """The settings that point the SMS channel at the local Twilio server *twilio* (callbacks to *live_port*)."""
    return {
        "BASE_URL": f"http://127.0.0.1:{live_port}",
        "TWILIO_API_BASE": twilio.url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM": SENDER,
        "SMS_DEFAULT_REGION": "US",
        "SMS_HELP_TEXT": HELP_TEXT,
        "TWILIO_RATE": 0,  # Twilio's answers alone here; our own pacing per number: tests/plugins/test_sms_pacing.py
    }


@contextlib.contextmanager
def db(app):
    """A session for the test's own reads and writes, closed before the app is called again."""
    with app.app_context():
        yield get_session()


def make_contact(app, phone: str, email: str = "ana@example.com") -> int:
    with db(app) as session:
        contact = Contact(email=email, phone=phone, fields={})
        session.add(contact)
        session.flush()
        session.add(Consent(contact_id=contact.id, channel="sms", status="granted", source="form:signup"))
        session.commit()
        return contact.id


def channel(app, **overrides):
    cls = app.extensions["nudge.plugins"].channels["sms"]
    return cls({**app.config, **overrides})


def outbound(to: str = PHONE, text: str = "Your code is 1234") -> OutboundMessage:
    return OutboundMessage(key=f"test:{next(_keys)}", channel="sms", template="code", to=to, text=text)


def send_via_outbox(app, contact_id: int) -> Message:
    """Queue one SMS for the contact and let the engine's outbox deliver it, at noon on the contact's (LA) clock."""
    noon = next_local_time(int(time.time()), dt_time(12, 0), ZoneInfo("America/Los_Angeles"))
    with db(app) as session:
        msg = Message(key=f"test:{next(_keys)}", contact_id=contact_id, channel="sms", template="welcome", data={})
        session.add(msg)
        session.commit()
        with Delivery(session, app, now=noon) as delivery:
            delivery.deliver([msg.id])
        session.refresh(msg)
        return msg


def history(app, message_id: int) -> list[str]:
    with db(app) as session:
        return list(
            session.scalars(
                select(MessageStatusChange.status)
                .where(MessageStatusChange.message_id == message_id, MessageStatusChange.source == "sms")
                .order_by(MessageStatusChange.id)
            )
        )


def events(app, name: str) -> list[Event]:
    with db(app) as session:
        return list(session.scalars(select(Event).where(Event.name == name).order_by(Event.id)))


def consents(app, contact_id: int) -> list[Consent]:
    with db(app) as session:
        return list(
            session.scalars(
                select(Consent).where(Consent.contact_id == contact_id, Consent.channel == "sms").order_by(Consent.id)
            )
        )


# -- sending -------------------------------------------------------------------------------------
def test_send_normalises_the_number_and_asks_for_status_callbacks(app, twilio):
    contact_id = make_contact(app, "(415) 555-2671")
    msg = send_via_outbox(app, contact_id)
    [(sid, form)] = twilio.messages.items()
    assert form["To"] == PHONE
    assert form["From"] == SENDER
    assert "thanks for signing up" in form["Body"]
    assert form["StatusCallback"] == app.config["BASE_URL"] + "/sms/twilio/status"
    assert msg.status == "sent" and msg.provider_id == sid


@pytest.mark.parametrize(
    "written, e164",
    [
        ("+1 415-555-2671", PHONE),
        ("(415) 555-2671", PHONE),  # national form, NUDGE_SMS_DEFAULT_REGION=US
        ("  415.555.2671 ", PHONE),
        ("011 49 1511 2345678", "+4915112345678"),  # the US international prefix
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_numbers_are_normalised_to_e164(app, written, e164):
    assert channel(app).validate_address(written) == e164


@pytest.mark.parametrize(
    "written, region, reason",
    [
        ("", "US", "empty"),
        ("12345", "US", "too short"),
        ("call me maybe", "US", "not a phone number"),
        ("+1 555 555 5555", "US", r"not a valid phone number for country code \+1"),
        ("+999 1234567", "US", "country code"),
        ("(415) 555-2671", None, "NUDGE_SMS_DEFAULT_REGION"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(app, written, region, reason):
    with pytest.raises(ValueError, match=reason):
        channel(app, SMS_DEFAULT_REGION=region).validate_address(written)


def test_an_invalid_number_is_never_sent(app, twilio):
    with pytest.raises(ChannelError) as info:
        channel(app).send(outbound(to="12345"))
    assert info.value.permanent and info.value.suppress == "invalid_address"
    assert twilio.requests == []


def test_a_batch_reuses_one_connection(app, twilio):
    sms = channel(app)
    with sms.batch():
        sids = [sms.send(outbound()).provider_id for _ in range(3)]
    assert sorted(sids) == sorted(twilio.messages) and len(set(sids)) == 3
    assert twilio.connections == 1


def test_twilios_429_holds_the_rest_of_the_batch_until_retry_after(app, twilio):
    phones = [f"+1415555{2671 + i}" for i in range(4)]
    contacts = [make_contact(app, phone, email=f"c{i}@example.com") for i, phone in enumerate(phones)]
    noon = next_local_time(int(time.time()), dt_time(12, 0), ZoneInfo("America/Los_Angeles"))
    with db(app) as session:
        rows = [Message(key=f"test:{next(_keys)}", contact_id=c, channel="sms", template="welcome") for c in contacts]
        session.add_all(rows)
        session.commit()
        ids = [row.id for row in rows]
    twilio.reply_next(429, 20429, "Too Many Requests", headers={"Retry-After": "20"})
    with db(app) as session, Delivery(session, app, now=noon) as delivery:
        assert delivery.deliver(ids) == 0
    assert len(twilio.requests) == 1 and not twilio.messages  # refused, and nothing more asked of Twilio
    with db(app) as session:
        rows = session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)).all()
        assert [(m.status, m.attempts) for m in rows] == [("pending", 1)] + [("pending", 0)] * 3
        assert {m.next_attempt_at for m in rows[1:]} == {rows[0].next_attempt_at} != {None}
    with db(app) as session, Delivery(session, app, now=noon + 19) as delivery:
        assert delivery.deliver(ids) == 0  # not before Twilio's time
    with db(app) as session, Delivery(session, app, now=noon + 20) as delivery:
        assert delivery.deliver(ids) == 4
    assert sorted(m["To"] for m in twilio.messages.values()) == sorted(phones)  # each text once


def test_missing_credentials_name_the_settings(app):
    with pytest.raises(ChannelError, match="NUDGE_TWILIO_ACCOUNT_SID and NUDGE_TWILIO_AUTH_TOKEN"):
        channel(app, TWILIO_AUTH_TOKEN=None).send(outbound())


@pytest.mark.parametrize(
    "settings, variable",
    [
        ({"TWILIO_AUTH_TOKEN": None}, "NUDGE_TWILIO_AUTH_TOKEN"),
        ({"TWILIO_FROM": None}, "NUDGE_TWILIO_FROM"),
        ({"SMS_DEFAULT_REGION": "Atlantis"}, "NUDGE_SMS_DEFAULT_REGION"),
        ({"TWILIO_TIMEOUT": "soon"}, "NUDGE_TWILIO_TIMEOUT"),
        ({"TWILIO_RATE": -1}, "NUDGE_TWILIO_RATE"),
        ({"TWILIO_RATE": "fast"}, "NUDGE_TWILIO_RATE"),
    ],
)
def test_half_configured_twilio_stops_start_up_naming_the_setting(start_up, settings, variable):
    twilio = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "token", "TWILIO_FROM": SENDER}
    with pytest.raises(ConfigError, match=variable):
        start_up(**{**twilio, **settings})


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status, code, headers, permanent, suppress, retry_after",
    [
        (400, 21211, {}, True, "invalid_address", None),
        (400, 21614, {}, True, "invalid_address", None),
        (429, 20429, {"Retry-After": "7"}, False, None, 7.0),
        (429, None, {}, False, None, None),
        (500, 20500, {}, False, None, None),
        (503, None, {"Retry-After": "30"}, False, None, 30.0),
        (400, 21602, {}, True, None, None),
    ],
    ids=["21211", "21614", "20429", "429", "500", "503", "other-4xx"],
)
def test_twilio_errors_are_classified(app, twilio, status, code, headers, permanent, suppress, retry_after):
    twilio.reply_next(status, code, "scripted failure", headers=headers)
    with pytest.raises(ChannelError) as info:
        channel(app).send(outbound())
    error = info.value
    assert (error.permanent, error.suppress, error.retry_after, error.ambiguous) == (
        permanent,
        suppress,
        retry_after,
        False,
    )
    assert str(status) in error.message and "scripted failure" in error.message


def test_an_unsubscribed_recipient_is_recorded_as_opted_out(app, twilio):
    contact_id = make_contact(app, "+1 415-555-2671")
    twilio.opted_out.add(PHONE)
    before = utcnow()
    with app.app_context(), pytest.raises(ChannelError) as info:
        channel(app).send(outbound())
    assert info.value.permanent and info.value.suppress == "unsubscribed" and "21610" in info.value.message
    last = consents(app, contact_id)[-1]
    assert (last.status, last.source) == ("revoked", "twilio:21610") and last.recorded_at >= before
    [event] = events(app, "sms.opted_out")
    assert event.contact_id == contact_id


def test_wrong_credentials_are_retried_and_name_the_setting(app, twilio):
    with pytest.raises(ChannelError) as info:
        channel(app, TWILIO_AUTH_TOKEN="not-the-token").send(outbound())
    assert not info.value.permanent and "NUDGE_TWILIO_AUTH_TOKEN" in info.value.message


def test_a_connection_dropped_after_sending_is_ambiguous(app, twilio):
    twilio.reply_next(drop=True)
    with pytest.raises(ChannelError) as info:
        channel(app).send(outbound())
    assert info.value.ambiguous and len(twilio.requests) == 1  # Twilio had the request


def test_an_unreachable_api_is_retried_not_ambiguous(app):
    with pytest.raises(ChannelError) as info:
        channel(app, TWILIO_API_BASE=f"http://127.0.0.1:{free_port()}").send(outbound())
    assert not info.value.ambiguous and not info.value.permanent


# -- delivery reports ----------------------------------------------------------------------------
@pytest.fixture
def sent(app, twilio, live_app):
    """An SMS sent through the outbox to a contact: (message, its Twilio SID)."""
    msg = send_via_outbox(app, make_contact(app, PHONE))
    return msg, msg.provider_id


def test_a_signed_delivery_report_is_recorded_and_raises_sms_delivered(app, twilio, sent):
    msg, sid = sent
    assert twilio.send_status(sid, "sent")[0] == 204
    assert twilio.send_status(sid, "delivered")[0] == 204
    assert history(app, msg.id) == ["sent", "delivered"]
    [event] = events(app, "sms.delivered")
    assert event.contact_id == msg.contact_id and event.props["provider_id"] == sid


@pytest.mark.parametrize("signature", ["", "bad", "forged-with-another-token", "tampered"])
def test_a_report_without_a_valid_signature_is_forbidden(app, twilio, sent, signature):
    msg, sid = sent
    url = twilio.messages[sid]["StatusCallback"]
    params = twilio.status_params(sid, "delivered")
    if signature == "forged-with-another-token":
        signature = RequestValidator("another-token").compute_signature(url, params)
    elif signature == "tampered":  # signed as "failed", then changed in transit
        signature = RequestValidator(twilio.auth_token).compute_signature(url, twilio.status_params(sid, "failed"))
    status, _ = twilio.post_signed(url, params, signature=signature)
    assert status == 403
    assert history(app, msg.id) == [] and events(app, "sms.delivered") == []


@pytest.mark.parametrize(
    "order",
    [
        ["delivered", "sent", "queued", "sending"],
        ["sending", "sent", "queued", "delivered", "sent"],
        ["queued", "delivered", "undelivered", "sent"],
    ],
)
def test_out_of_order_reports_never_move_a_status_backwards(app, twilio, sent, order):
    msg, sid = sent
    for status in order:
        assert twilio.send_status(sid, status)[0] == 204
    rank = {"queued": 1, "sending": 2, "sent": 3, "delivered": 4, "failed": 4}
    recorded = history(app, msg.id)
    assert recorded[-1] == "delivered"
    assert [rank[s] for s in recorded] == sorted({rank[s] for s in recorded})  # strictly forward
    assert len(events(app, "sms.delivered")) == 1 and events(app, "sms.failed") == []
    with db(app) as session:
        assert session.get(Message, msg.id).status == "sent"


def test_an_undelivered_report_fails_the_message_and_raises_sms_failed(app, twilio, sent):
    msg, sid = sent
    assert twilio.send_status(sid, "undelivered", error_code="30003")[0] == 204
    with db(app) as session:
        row = session.get(Message, msg.id)
        assert row.status == "failed" and "30003" in row.error
    [event] = events(app, "sms.failed")
    assert event.props["error_code"] == "30003" and event.props["status"] == "undelivered"


@pytest.mark.parametrize("code, suppressed", [("30006", True), ("30005", True), ("30003", False)])
def test_a_number_twilio_reports_unreachable_for_good_gets_no_more_texts(app, twilio, sent, code, suppressed):
    msg, sid = sent
    assert twilio.send_status(sid, "undelivered", error_code=code)[0] == 204
    again = send_via_outbox(app, msg.contact_id)
    if suppressed:  # a landline or an unknown handset: suppressed, the provider is not asked again
        assert (again.status, again.error) == ("suppressed", "bounced") and len(twilio.requests) == 1
        with db(app) as session:
            [row] = session.scalars(select(Suppression)).all()
            assert (row.channel, row.reason, row.detail) == ("sms", "invalid_address", f"Twilio error {code}")
    else:  # the phone was off: the next text goes
        assert again.status == "sent" and len(twilio.requests) == 2


# -- incoming messages ---------------------------------------------------------------------------
@pytest.fixture
def inbound(app, twilio, live_app):
    """Text the app from *phone*: returns (HTTP status, TwiML reply)."""

    def text(body: str, phone: str = PHONE):
        return twilio.send_inbound(live_app + "/sms/twilio/inbound", phone, body)

    return text


def twiml_messages(reply: str) -> list[str]:
    root = ET.fromstring(reply)
    assert root.tag == "Response"
    return [m.text for m in root.iter("Message")]


@pytest.mark.parametrize(
    "body, keyword",
    [
        ("STOP", "STOP"),
        ("stop", "STOP"),
        ("  Stop  ", "STOP"),
        ("STOPALL", "STOPALL"),
        ("unsubscribe", "UNSUBSCRIBE"),
        ("Cancel", "CANCEL"),
        ("end", "END"),
        ("QUIT\n", "QUIT"),
        ("\tquit ", "QUIT"),
        (" UnSubScribe", "UNSUBSCRIBE"),
        ("revoke", "REVOKE"),
        ("OptOut", "OPTOUT"),
        ("opt out", "OPT OUT"),
        ("OPT-OUT", "OPT OUT"),
        ("Stop.", "STOP"),
        ("stop please", "STOP"),
        ("STOP!!! no more texts", "STOP"),
        ("Quit, thanks", "QUIT"),
        ("'End'", "END"),
        ("Opt out of this please", "OPT OUT"),
    ],
)
def test_stop_keywords_record_an_sms_opt_out(app, inbound, body, keyword):
    contact_id = make_contact(app, "+1 415-555-2671")  # written differently from Twilio's E.164
    before = utcnow()
    status, reply = inbound(body)
    assert status == 200 and twiml_messages(reply) == []
    last = consents(app, contact_id)[-1]
    assert last.status == "revoked"
    assert last.source == f"sms:{keyword}"
    assert before <= last.recorded_at <= utcnow()
    [event] = events(app, "sms.opted_out")
    assert event.contact_id == contact_id and event.props["body"] == body
    assert events(app, "sms.replied") == []


@pytest.mark.parametrize("body", ["START", "unstop", " Yes ", "Yes!", "start."])
def test_start_keywords_record_an_sms_opt_in(app, inbound, body):
    contact_id = make_contact(app, "(415) 555-2671")
    assert inbound("STOP")[0] == 200
    assert inbound(body)[0] == 200
    word = "".join(ch for ch in body if ch.isalpha()).upper()
    assert [(c.status, c.source) for c in consents(app, contact_id)[1:]] == [
        ("revoked", "sms:STOP"),
        ("granted", f"sms:{word}"),
    ]
    [event] = events(app, "sms.opted_in")
    assert event.contact_id == contact_id


@pytest.mark.parametrize("body", [" help ", "INFO", "Help?"])
def test_help_gets_the_configured_reply(app, inbound, body):
    contact_id = make_contact(app, PHONE)
    status, reply = inbound(body)
    assert status == 200 and twiml_messages(reply) == [HELP_TEXT]
    assert len(consents(app, contact_id)) == 1 and events(app, "sms.replied") == []


@pytest.mark.parametrize(
    "body",
    [
        "What time do you open?",
        "Don't stop",
        "Yes, what time?",
        "help me with my order",
        "Start time is 9?",
        "weekend plans",
        "123",
    ],
)
def test_other_messages_raise_sms_replied(app, inbound, body):
    contact_id = make_contact(app, PHONE)
    status, reply = inbound(body)
    assert status == 200 and twiml_messages(reply) == []
    [event] = events(app, "sms.replied")
    assert event.contact_id == contact_id and event.props["body"] == body
    assert [c.status for c in consents(app, contact_id)] == ["granted"]


def test_a_stop_from_a_number_that_is_no_contact_yet_keeps_later_contacts_from_texts(app, client, inbound, twilio):
    stranger = "+14155550199"
    assert inbound("Stop.", phone=stranger)[0] == 200
    with db(app) as session:
        assert session.scalars(select(Consent)).all() == [] and session.scalars(select(Event)).all() == []
        [row] = session.scalars(select(Suppression)).all()
        assert (row.channel, row.reason) == ("sms", "unsubscribed")
        assert stranger not in (row.detail or "") and row.address_hash != stranger  # no phone number kept
    # later, the number arrives through the API, with SMS consent recorded there
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    created = client.post(
        "/api/v1/contacts", json={"email": "late@example.com", "phone": "+1 415-555-0199"}, headers=headers
    )
    assert created.status_code == 201, created.json
    contact_id = created.json["id"]
    granted = client.post(
        f"/api/v1/contacts/{contact_id}/consents", json={"channel": "sms", "granted": True}, headers=headers
    )
    assert granted.status_code == 201, granted.json
    msg = send_via_outbox(app, contact_id)
    assert (msg.status, msg.error) == ("suppressed", "unsubscribed") and twilio.requests == []
    # the number itself opts back in: texts may go again
    assert inbound("START", phone=stranger)[0] == 200
    assert send_via_outbox(app, contact_id).status == "sent"
    assert [form["To"] for form in twilio.messages.values()] == [stranger]


@pytest.mark.parametrize(
    "body, event",
    [
        ("STOP", "sms.opted_out"),
        ("stop please", "sms.opted_out"),
        ("START", "sms.opted_in"),
        ("See you then", "sms.replied"),
    ],
)
def test_a_replayed_signed_message_changes_nothing(app, twilio, live_app, inbound, body, event):
    contact_id = make_contact(app, PHONE)
    if event == "sms.opted_in":
        assert inbound("STOP")[0] == 200
    url = live_app + "/sms/twilio/inbound"
    params = twilio.inbound_params(PHONE, body)
    assert twilio.post_signed(url, params)[0] == 200
    ledger, raised = consents(app, contact_id), events(app, event)
    assert len(raised) == 1
    for _ in range(2):  # Twilio retries a webhook it got no answer to, with the same MessageSid and signature
        assert twilio.post_signed(url, params)[0] == 200
    assert [(c.id, c.status) for c in consents(app, contact_id)] == [(c.id, c.status) for c in ledger]
    assert [e.id for e in events(app, event)] == [e.id for e in raised]
    # a new message (a new MessageSid) with the same words is news again, where it changes something
    assert twilio.send_inbound(url, PHONE, "What now?")[0] == 200
    assert len(events(app, "sms.replied")) == (2 if event == "sms.replied" else 1)


def test_an_unsigned_incoming_message_is_forbidden(app, twilio, live_app):
    contact_id = make_contact(app, PHONE)
    status, _ = twilio.post_signed(live_app + "/sms/twilio/inbound", twilio.inbound_params(PHONE, "STOP"), signature="")
    assert status == 403
    assert [c.status for c in consents(app, contact_id)] == ["granted"]
