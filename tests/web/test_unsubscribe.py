import re
import time

import pytest
from sqlalchemy import select

from server.consent import current_consent
from server.db import get_session
from server.engine.policy import blocker
from server.links import preferences_url, sign, unsubscribe_url
from server.models import Consent, Message

from .conftest import HUMAN, events


def send_blocker(app, contact_id, channel, address):
    """What the send-time policy says of a send now (the outbox asks it before every send)."""
    return blocker(
        get_session(),
        app.config,
        app.extensions["nudge.plugins"].channels,
        channel,
        contact_id=contact_id,
        address=address,
        now=int(time.time()),
    )


def _path(url):
    return re.sub(r"^https?://[^/]+", "", url)


@pytest.fixture
def unsub_path(app, public_id, sent_message):
    with app.app_context():
        return _path(unsubscribe_url(public_id, "email", sent_message))


def test_get_only_asks_for_confirmation(app, client, contact_id, unsub_path):
    page = client.get(unsub_path, headers=HUMAN)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Unsubscribe?" in html and "r***@example.com" in html and "reader@example.com" not in html
    assert 'method="post"' in html
    with app.app_context():
        assert current_consent(get_session(), contact_id, "email") is None  # a prefetch changes nothing
    assert events(app) == []


def test_the_confirmation_pages_own_button_is_recorded_as_the_page_not_one_click(app, client, contact_id, unsub_path):
    html = client.get(unsub_path, headers=HUMAN).get_data(as_text=True)
    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', html, re.S)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    assert client.post(_path(form.group(1)), data=fields, headers=HUMAN).status_code == 200
    with app.app_context():
        session = get_session()
        assert current_consent(session, contact_id, "email") == "revoked"
        assert session.scalar(select(Consent.source)) == "unsubscribe-page"


def test_rfc8058_one_click_post_unsubscribes_without_cookie_or_csrf(app, client, contact_id, unsub_path, sent_message):
    response = client.post(unsub_path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    with app.app_context():
        session = get_session()
        assert current_consent(session, contact_id, "email") == "revoked"
        row = session.scalar(select(Consent))
        assert row.source == "one-click"
    [event] = events(app, "email.unsubscribed")
    assert event.contact_id == contact_id and event.props["message"] == sent_message
    # a second POST (providers retry) records nothing new
    assert client.post(unsub_path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(events(app, "email.unsubscribed")) == 1


def test_opt_out_blocks_a_message_already_queued(app, client, contact_id, unsub_path):
    with app.app_context():
        session = get_session()
        session.add(Message(key="queued", contact_id=contact_id, channel="email", template="offer", data={}))
        session.commit()
        assert send_blocker(app, contact_id, "email", "reader@example.com") is None
    client.post(unsub_path, data={"List-Unsubscribe": "One-Click"})
    with app.app_context():
        assert send_blocker(app, contact_id, "email", "reader@example.com") == "unsubscribed"
        # the other channel is untouched
        assert send_blocker(app, contact_id, "sms", "+4930123456") == "no_consent"  # untouched: never granted


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_unsubscribe_token_is_404(app, client, public_id, unsub_path, method):
    response = client.open(unsub_path[:-3] + "abc", method=method)
    assert response.status_code == 404
    with app.app_context():
        wrong_purpose = sign("preferences", {"p": public_id, "ch": "email"})
    assert client.open(f"/u/{wrong_purpose}", method=method).status_code == 404
    assert events(app) == []


def test_preference_page_changes_consent_per_channel(app, client, contact_id, public_id):
    with app.app_context():
        path = _path(preferences_url(public_id))
    page = client.get(path)
    html = page.get_data(as_text=True)
    # email sends unless revoked: subscribed; SMS needs an opt-in (its declared rule) and has none: not subscribed
    assert page.status_code == 200 and 'value="email" checked' in html and 'value="sms">' in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    saved = client.post(path, data={"csrf_token": token, "channel": ["sms"]})
    assert saved.status_code == 200 and "Saved." in saved.get_data(as_text=True)
    assert 'value="sms" checked' in saved.get_data(as_text=True)
    with app.app_context():
        session = get_session()
        assert current_consent(session, contact_id, "email") == "revoked"
        assert current_consent(session, contact_id, "sms") == "granted"  # ticked by the person: their opt-in
    assert [e.name for e in events(app)] == ["email.unsubscribed"]
    client.post(path, data={"csrf_token": token, "channel": ["sms", "email"]})
    with app.app_context():
        assert current_consent(get_session(), contact_id, "email") == "granted"


@pytest.mark.parametrize("source", [{"List-Unsubscribe": "One-Click"}, {}])
def test_an_unsubscribe_token_for_a_channel_no_longer_installed_records_nothing(app, client, public_id, source):
    """A link signed for a channel since uninstalled answers the page, without a ledger row or an event for it."""
    with app.app_context():
        token = sign("unsubscribe", {"p": public_id, "ch": "fax", "m": "journey:1:step:2"})
    assert client.get(f"/u/{token}", headers=HUMAN).status_code == 200
    answer = client.post(f"/u/{token}", data=source)
    assert answer.status_code == 200 and "You are unsubscribed" in answer.get_data(as_text=True)
    with app.app_context():
        assert get_session().scalars(select(Consent)).all() == []
    assert events(app) == []


def test_a_plugin_unsubscribing_with_a_token_for_a_channel_no_longer_installed_records_nothing(app, public_id):
    """A plugin's own unsubscribe (a mailto: reply, say) goes through ``server.sdk.unsubscribe`` the same way."""
    from server import sdk

    with app.test_request_context():
        token = sign("unsubscribe", {"p": public_id, "ch": "fax"})
        assert sdk.unsubscribe(token, source="mailto") == "fax"
        assert get_session().scalars(select(Consent)).all() == []
        assert sdk.unsubscribe(sign("unsubscribe", {"p": public_id, "ch": "email"}), source="mailto") == "email"
        assert [c.channel for c in get_session().scalars(select(Consent))] == ["email"]
    assert [e.name for e in events(app)] == ["email.unsubscribed"]


def test_preference_page_needs_its_csrf_token(app, client, contact_id, public_id):
    with app.app_context():
        path = _path(preferences_url(public_id))
    client.get(path)
    assert client.post(path, data={"channel": []}).status_code == 400
    with app.app_context():
        assert current_consent(get_session(), contact_id, "email") is None


def test_queued_message_is_not_sent_after_one_click(app, client, contact_id, unsub_path, smtp_server):
    """End to end: a message already in the outbox when the contact unsubscribes is never delivered."""
    from server.engine.jobs import deliver_messages
    from server.models import Template

    with app.app_context():
        session = get_session()
        session.add(Template(channel="email", name="offer", parts={"subject": "Offer", "txt": "Buy now"}))
        msg = Message(key="queued-offer", contact_id=contact_id, channel="email", template="offer", data={})
        session.add(msg)
        session.commit()
        message_id = msg.id
    assert client.post(unsub_path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with app.app_context():
        deliver_messages([message_id])
        assert get_session().get(Message, message_id).status == "suppressed"
    assert smtp_server.messages == []
