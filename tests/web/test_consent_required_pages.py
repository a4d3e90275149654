"""``NUDGE_CONSENT_REQUIRED=email`` in the pages: a broadcast's audience, the preference page, the contact's page
and Try it all follow the send-time policy's rule (an opt-in needed); a value saved at runtime is checked and
applies; unset, nothing changes."""

from __future__ import annotations

import re

import pytest

from server import instance_settings
from server.consent import current_consent, record_consent
from server.db import get_session
from server.engine.policy import blocker
from server.links import preferences_url
from server.models import Contact, ContactTag, Segment

from ..helpers import signed_in
from .crm_helpers import post
from .test_admin_rules_try import _lines, _try


@pytest.fixture
def required():
    """The test's ``CONSENT_REQUIRED`` (None: unset); a test parametrizes it to change it."""
    return "email"


@pytest.fixture
def config(config, required):
    return {**config, "CONSENT_REQUIRED": required} if required else config


@pytest.fixture
def members(app) -> dict[str, int]:
    """Four VIPs by consent history on email (none, granted, revoked, revoked then granted); a segment of them."""
    ids = {}
    with app.app_context():
        session = get_session()
        for name, history in (("none", ()), ("granted", (True,)), ("revoked", (False,)), ("back", (False, True))):
            contact = Contact(email=f"{name}@example.com", fields={})
            session.add(contact)
            session.flush()
            session.add(ContactTag(contact_id=contact.id, tag="vip"))
            for granted in history:
                record_consent(session, contact.id, "email", granted, "test")
            ids[name] = contact.id
        session.add(Segment(name="vips", condition='tag == "vip"'))
        session.commit()
    return ids


def _audience(app) -> str:
    editor = signed_in(app, "editor")
    text = post(editor, "/admin/broadcasts/audience", hx=True, template="email:welcome", segment="vips").get_data(
        as_text=True
    )
    return re.search(r'<strong id="audience-count">(\d+)</strong> of (\d+) member', text).group(1, 2)


def _sendable(app, ids: dict[str, int]) -> set[str]:
    """Who the outbox's send-time policy lets a marketing email through to now."""
    with app.app_context():
        session = get_session()
        channels = app.extensions["nudge.plugins"].channels
        return {
            name
            for name, contact_id in ids.items()
            if blocker(
                session,
                app.config,
                channels,
                "email",
                contact_id=contact_id,
                address=f"{name}@example.com",
                now=0,
                marketing=False,
            )
            is None
        }


def test_the_audience_counts_only_members_who_opted_in(app, members):
    assert _audience(app) == ("2", "4")  # granted, and revoked-then-granted
    editor = signed_in(app, "editor")
    preview = post(editor, "/admin/broadcasts/audience", hx=True, template="email:welcome", segment="vips")
    assert "this channel needs an opt-in" in preview.get_data(as_text=True)  # why the count is what it is
    assert _sendable(app, members) == {"granted", "back"}  # the outbox agrees with the count


@pytest.mark.parametrize("required", [None])
def test_unset_the_audience_counts_everyone_who_has_not_opted_out(app, members, required):
    assert _audience(app) == ("3", "4")
    editor = signed_in(app, "editor")
    preview = post(editor, "/admin/broadcasts/audience", hx=True, template="email:welcome", segment="vips")
    assert "needs an opt-in" not in preview.get_data(as_text=True)
    assert _sendable(app, members) == {"none", "granted", "back"}


@pytest.mark.parametrize("required", [None])
def test_a_value_saved_at_runtime_is_checked_then_applies_to_the_audience(app, members, required):
    assert _audience(app) == ("3", "4")
    with app.app_context():
        errors = instance_settings.save(app, {"CONSENT_REQUIRED": "fax"}, "test")
    assert errors == {
        "CONSENT_REQUIRED": "names no installed channel that addresses contacts with a consent rule: fax; "
        "it can name: email, sms (unset it to follow each channel's own rule)"
    }
    assert app.config["CONSENT_REQUIRED"] is None and _audience(app) == ("3", "4")
    with app.app_context():
        assert instance_settings.save(app, {"CONSENT_REQUIRED": " email "}, "test") == {}
    assert app.config["CONSENT_REQUIRED"] == "email"
    assert _audience(app) == ("2", "4")
    assert _sendable(app, members) == {"granted", "back"}


def test_the_preference_page_shows_email_unsubscribed_until_opted_in_and_ticking_it_opts_in(app, client):
    with app.app_context():
        session = get_session()
        contact = Contact(email="reader@example.com", fields={})
        session.add(contact)
        session.commit()
        contact_id, path = contact.id, re.sub(r"^https?://[^/]+", "", preferences_url(contact.public_id))
    page = client.get(path).get_data(as_text=True)
    assert 'value="email">' in page and 'value="email" checked' not in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    # saved without the box ticked: nothing recorded (no opt-in, no opt-out)
    client.post(path, data={"csrf_token": token})
    with app.app_context():
        assert current_consent(get_session(), contact_id, "email") is None
    saved = client.post(path, data={"csrf_token": token, "channel": ["email"]}).get_data(as_text=True)
    assert 'value="email" checked' in saved
    with app.app_context():
        assert current_consent(get_session(), contact_id, "email") == "granted"
    assert _sendable(app, {"reader": contact_id}) == {"reader"}


@pytest.mark.parametrize("required", [None])
def test_unset_the_preference_page_shows_email_subscribed_without_a_record(app, client, required):
    with app.app_context():
        session = get_session()
        contact = Contact(email="reader@example.com", fields={})
        session.add(contact)
        session.commit()
        path = re.sub(r"^https?://[^/]+", "", preferences_url(contact.public_id))
    assert 'value="email" checked' in client.get(path).get_data(as_text=True)


def _consent_lines(app, contact_id: int) -> dict[str, str]:
    admin = signed_in(app, "viewer")
    page = admin.get(f"/admin/contacts/{contact_id}").get_data(as_text=True)
    section = page.split('id="consent-head"')[1].split('id="ledger-head"')[0]
    items = re.findall(r"<li>(.*?)</li>", section, re.S)
    return {line.split(":")[0]: " ".join(re.sub(r"<[^>]+>", " ", line).split()).split(": ", 1)[1] for line in items}


def test_the_contact_page_says_email_needs_an_opt_in(app, members):
    with app.app_context():
        session = get_session()
        session.get(Contact, members["none"]).phone = "+4930123456"
        session.commit()
    # email by the setting, SMS by its own declaration; a webhook reaches nobody: not listed
    assert _consent_lines(app, members["none"]) == {
        "email": "no record (needs opt-in)",
        "sms": "no record (needs opt-in)",
    }
    assert _consent_lines(app, members["granted"])["email"] == "granted (subscribed)"
    assert _consent_lines(app, members["revoked"])["email"] == "revoked (unsubscribed)"


@pytest.mark.parametrize("required", [None])
def test_unset_the_contact_page_says_email_is_subscribed_without_a_record(app, members, required):
    assert _consent_lines(app, members["none"])["email"] == "no record (subscribed)"


def test_try_it_suppresses_the_email_without_an_opt_in_as_the_outbox_does(app):
    editor = signed_in(app, "editor")
    without = _lines(_try(editor, consent_email=""))
    assert not any(" send sent email welcome" in line for line in without)
    assert any(
        line.startswith("2026-03-02 09:00:00 UTC suppressed did not send email welcome: ") and "no_consent" in line
        for line in without
    ), without
    granted = _lines(_try(editor, consent_email="granted"))
    assert "2026-03-02 09:00:00 UTC send sent email welcome" in granted


@pytest.mark.parametrize("required", [None])
def test_unset_try_it_sends_the_email_without_a_record(app, required):
    editor = signed_in(app, "editor")
    assert "2026-03-02 09:00:00 UTC send sent email welcome" in _lines(_try(editor, consent_email=""))
