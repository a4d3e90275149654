"""Quiet hours hold for every SMS — journeys, broadcasts, retries — in the zone(s) of the recipient's number.

Everything runs on the engine's clock (``EngineContext.now`` and ``Delivery(now=…)``), with the
messages going to the local Twilio server, which receives each one only at the allowed time.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine import dispatch
from server.engine.broadcast import create_broadcast
from server.engine.context import EngineContext
from server.engine.outbox import Delivery
from server.engine.quiet import allowed_from, recipient_zones
from server.engine.timeutil import iso, parse_hhmm, to_dt
from server.hookspecs import hookimpl
from server.models import Consent, Contact, Enrolment, Event, JourneyLog, Message, MessageStatusChange, Segment
from server.plugins import DEFAULT_PLUGINS, PluginError
from server.sdk import Channel, SendResult

from ..helpers import load_rules

SENDER = "+15017122661"
NEW_YORK = "+12125550101"  # Manhattan
NEW_JERSEY = "+12015550123"  # area code 201: America/New_York, by the number alone
NEWFOUNDLAND = "+17095550123"  # area code 709 spans America/Halifax and America/St_Johns
AUSTRALIA = "+61412345678"  # a mobile number: anywhere from Cocos (UTC+6:30) to Lord Howe (UTC+11)


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@pytest.fixture
def config(config, twilio):
    return {
        **config,
        "TWILIO_API_BASE": twilio.url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM": SENDER,
        "DEFAULT_TIMEZONE": "UTC",
    }


def make_contact(app, phone: str, timezone_name: str | None = None, tag: str | None = None) -> int:
    with app.app_context():
        session = get_session()
        contact = Contact(email=f"{phone[1:]}@example.com", phone=phone, timezone=timezone_name, fields={})
        session.add(contact)
        session.flush()
        session.add(Consent(contact_id=contact.id, channel="sms", status="granted", source="form:signup"))
        if tag:
            from server.models import ContactTag

            session.add(ContactTag(contact_id=contact.id, tag=tag))
        session.commit()
        return contact.id


def queue_sms(app, contact_id: int) -> int:
    """An SMS in the outbox, due long before the test's instants (which lie years ahead of the wall clock)."""
    with app.app_context():
        session = get_session()
        msg = Message(
            key=f"test:{contact_id}",
            contact_id=contact_id,
            channel="sms",
            template="welcome",
            data={},
            next_attempt_at=to_dt(ts("2030-01-01T00:00:00Z")),
        )
        session.add(msg)
        session.commit()
        return msg.id


def deliver_at(app, message_ids: list[int], at: str) -> None:
    with app.app_context(), Delivery(get_session(), app, now=ts(at)) as delivery:
        delivery.deliver(message_ids)


def row(app, message_id: int) -> Message:
    with app.app_context():
        return get_session().get(Message, message_id)


def received(twilio) -> list[str]:
    return [form["To"] for form in twilio.messages.values()]


# -- broadcasts ------------------------------------------------------------------------------------
def test_a_broadcast_at_0225_in_new_york_goes_out_at_0800_local(app, twilio):
    make_contact(app, NEW_YORK, "America/New_York", tag="texters")
    with app.app_context():
        session = get_session()
        session.add(Segment(name="texters", condition='tag == "texters"'))
        session.commit()
        broadcast = create_broadcast(session, app.extensions["nudge.plugins"], "sms", "welcome", "texters", "night")
        session.commit()
    [message_id] = broadcast.message_ids
    deliver_at(app, [message_id], "2031-01-15T07:25:00Z")  # 02:25 EST
    assert received(twilio) == [] and twilio.requests == []
    held = row(app, message_id)
    assert (held.status, held.attempts, iso(int(held.next_attempt_at.timestamp()))) == (
        "pending",
        0,
        "2031-01-15T13:00:00Z",
    )  # 08:00 EST, no attempt counted
    deliver_at(app, [message_id], "2031-01-15T12:59:59Z")
    assert received(twilio) == []
    deliver_at(app, [message_id], "2031-01-15T13:00:00Z")
    assert received(twilio) == [NEW_YORK]
    sent = row(app, message_id)
    assert (sent.status, sent.attempts) == ("sent", 1)
    with app.app_context():
        history = (
            get_session()
            .scalars(
                select(MessageStatusChange.status)
                .where(MessageStatusChange.message_id == message_id)
                .order_by(MessageStatusChange.id)
            )
            .all()
        )
    assert history == ["deferred", "sent"]


# -- retries ---------------------------------------------------------------------------------------
def test_a_429_retry_that_would_land_at_2101_local_goes_at_0800_next_morning(app, twilio):
    message_id = queue_sms(app, make_contact(app, NEW_YORK, "America/New_York"))
    twilio.reply_next(429, 20429, "Too Many Requests", headers={"Retry-After": "120"})
    deliver_at(app, [message_id], "2031-01-16T01:59:00Z")  # 20:59 EST: allowed, but Twilio says wait 2 minutes
    retry = row(app, message_id)
    assert (retry.status, retry.attempts, iso(int(retry.next_attempt_at.timestamp()))) == (
        "pending",
        1,
        "2031-01-16T02:01:00Z",
    )  # 21:01 EST
    deliver_at(app, [message_id], "2031-01-16T02:01:00Z")
    assert len(twilio.requests) == 1 and received(twilio) == []  # the provider is not called in the window
    held = row(app, message_id)
    assert (held.status, held.attempts, iso(int(held.next_attempt_at.timestamp()))) == (
        "pending",
        1,
        "2031-01-16T13:00:00Z",
    )  # 08:00 EST the next morning
    deliver_at(app, [message_id], "2031-01-16T13:00:00Z")
    assert received(twilio) == [NEW_YORK] and row(app, message_id).attempts == 2


# -- contacts without a time zone: the number's zone(s) --------------------------------------------
def run_event(app, contact_id: int, name: str, at: str) -> list[int]:
    """Store and handle one event on the engine's clock; deliver what it wrote at that moment."""
    with app.app_context():
        session = get_session()
        ctx = EngineContext(session, app.config, ts(at), plugins=app.extensions["nudge.plugins"])
        event = Event(
            contact_id=contact_id,
            name=name,
            props={},
            source="api",
            occurred_at=to_dt(ts(at)),
            received_at=to_dt(ts(at)),
            processed_at=to_dt(ts(at)),
        )
        session.add(event)
        session.flush()
        dispatch.handle_event(ctx, event)
        dispatch.drain(ctx)
        ctx.commit()
        written = list(ctx.new_messages)
    deliver_at(app, written, at)
    return written


def advance_to(app, at: str) -> list[int]:
    """Resume every enrolment due by *at* on the engine's clock; deliver what it wrote."""
    with app.app_context():
        session = get_session()
        ctx = EngineContext(session, app.config, ts(at), plugins=app.extensions["nudge.plugins"])
        dispatch.advance(ctx, dispatch.due_enrolment_ids(ctx, 100))
        ctx.commit()
        written = list(ctx.new_messages)
    deliver_at(app, written, at)
    return written


SMS_RULE = 'rule "Text them"\nwhen signup.done then\n  send sms welcome\nend\n'


@pytest.mark.parametrize(
    "phone, at, allowed",
    [
        (NEW_JERSEY, "2031-01-15T08:00:00Z", "2031-01-15T13:00:00Z"),  # 03:00 EST -> 08:00 EST
        # 20:45 in Halifax is 21:15 in St John's: quiet there, so 08:00 Halifax (08:30 St John's)
        (NEWFOUNDLAND, "2031-01-16T00:45:00Z", "2031-01-16T12:00:00Z"),
        # 21:30 in Sydney, 17:00 in Cocos: the next moment allowed everywhere is 08:00 in Cocos (12:30 Sydney)
        (AUSTRALIA, "2031-01-15T10:30:00Z", "2031-01-16T01:30:00Z"),
    ],
    ids=["new-jersey", "several-zones", "mobile-unknown-area"],
)
def test_a_journey_texts_a_contact_without_time_zone_only_when_every_zone_of_the_number_allows(
    app, twilio, phone, at, allowed
):
    load_rules(app, SMS_RULE)
    contact_id = make_contact(app, phone)
    assert run_event(app, contact_id, "signup.done", at) == []
    assert received(twilio) == []
    with app.app_context():
        session = get_session()
        enrolment = session.scalar(select(Enrolment).where(Enrolment.contact_id == contact_id))
        assert enrolment.due == ts(allowed)
        wait = session.scalar(select(JourneyLog).where(JourneyLog.action == "wait"))
        assert wait.data["why"] == "quiet hours"
    assert advance_to(app, iso(ts(allowed) - 1)) == [] and received(twilio) == []
    assert len(advance_to(app, allowed)) == 1
    assert received(twilio) == [phone]


@pytest.mark.parametrize(
    "phone, at, allowed",
    [
        (NEW_JERSEY, "2031-01-15T08:00:00Z", "2031-01-15T13:00:00Z"),
        (NEWFOUNDLAND, "2031-01-16T00:45:00Z", "2031-01-16T12:00:00Z"),
    ],
    ids=["new-jersey", "several-zones"],
)
def test_the_outbox_holds_any_sms_to_a_contact_without_time_zone_until_the_number_allows(
    app, twilio, phone, at, allowed
):
    message_id = queue_sms(app, make_contact(app, phone))
    deliver_at(app, [message_id], at)
    assert received(twilio) == []
    assert iso(int(row(app, message_id).next_attempt_at.timestamp())) == allowed
    deliver_at(app, [message_id], allowed)
    assert received(twilio) == [phone]


def test_the_contacts_own_time_zone_wins_over_the_numbers():
    from plugins.sms_twilio.channel import SmsChannel

    assert [z.key for z in recipient_zones("Europe/Berlin", NEW_JERSEY, SmsChannel, {})] == ["Europe/Berlin"]
    assert [z.key for z in recipient_zones(None, NEW_JERSEY, SmsChannel, {})] == ["America/New_York"]
    assert [z.key for z in recipient_zones("Not/AZone", NEWFOUNDLAND, SmsChannel, {})] == [
        "America/Halifax",
        "America/St_Johns",
    ]
    assert [z.key for z in recipient_zones(None, "not a number", SmsChannel, {"DEFAULT_TIMEZONE": "Asia/Tokyo"})] == [
        "Asia/Tokyo"
    ]


def test_zones_without_a_common_allowed_time_settle_on_one_moment():
    """A +1 toll-free number spans Guam to American Samoa: no moment is allowed everywhere; one is chosen,
    and at that moment the check lets the message go (it never waits again and again)."""
    from plugins.sms_twilio.channel import SmsChannel

    zones = recipient_zones(None, "+18005550199", SmsChannel, {})
    assert len(zones) > 20
    window = (parse_hhmm("21:00"), parse_hhmm("08:00"))
    now = ts("2031-01-15T10:30:00Z")
    chosen = allowed_from(now, window, zones)
    assert chosen is not None and now < chosen <= now + 86400
    assert allowed_from(chosen, window, zones) is None


# -- a third-party channel declares its own window ---------------------------------------------------
class Pager(Channel):
    """A plugin's channel: pages a contact's account manager about them, never at night (contact's time)."""

    name = "pager"
    quiet_hours = ("22:00", "07:00")
    sent: list[str] = []

    def send(self, message):
        Pager.sent.append(message.key)
        return SendResult(provider_id=f"page-{message.key}")


class PagerPlugin:
    name = "pager-plugin"

    def __init__(self, channel=Pager):
        self.channel = channel

    @hookimpl
    def register_channels(self, config):
        return [self.channel]


def test_a_third_party_channel_gets_the_quiet_hours_it_declares(config):
    from server.app import create_app

    app = create_app({**config, "PLUGINS": (*DEFAULT_PLUGINS, PagerPlugin())})
    try:
        contact_id = make_contact(app, "+4915112345678", "Europe/Berlin")
        with app.app_context():
            session = get_session()
            msg = Message(
                key="page:1",
                contact_id=contact_id,
                channel="pager",
                template="wake",
                data={},
                next_attempt_at=to_dt(ts("2030-01-01T00:00:00Z")),
            )
            session.add(msg)
            session.commit()
            message_id = msg.id
        Pager.sent.clear()
        deliver_at(app, [message_id], "2031-01-15T21:30:00Z")  # 22:30 in Berlin
        assert Pager.sent == []
        assert iso(int(row(app, message_id).next_attempt_at.timestamp())) == "2031-01-16T06:00:00Z"  # 07:00 CET
        deliver_at(app, [message_id], "2031-01-16T06:00:00Z")
        assert Pager.sent == ["page:1"]
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()


def test_a_malformed_quiet_hours_declaration_stops_start_up_naming_the_channel(start_up):
    class Broken(Pager):
        name = "broken"
        quiet_hours = ("10pm", "7am")

    with pytest.raises(PluginError, match=r"channel 'broken' declares quiet_hours = \('10pm', '7am'\)"):
        start_up(PLUGINS=(*DEFAULT_PLUGINS, PagerPlugin(Broken)))
