"""The Channels page through the test client: admins only, the installed plugins with their versions, each
channel's settings as a form generated from its config_schema (secrets write-only, stored and audited like the
other settings) and "Test connection" reporting the provider's own answer: the local SMTP server's NOOP, the local
Twilio-speaking server's account, "not supported" for a channel without a test."""

from __future__ import annotations

import pytest

from server import instance_settings
from server.db import get_session

from ..helpers import signed_in
from ..plugins.twilio_server import TwilioServer
from ..servers import free_port
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, page_flash, post

TOKEN = "tw-secret-token-3141"


@pytest.fixture
def config(config):
    """The SMTP server is the admin's to set here."""
    return {k: v for k, v in config.items() if k != "SMTP_URL"}


@pytest.fixture
def twilio():
    server = TwilioServer(auth_token=TOKEN).start()
    yield server
    server.stop()


def _section(page: str, name: str) -> str:
    return page.split(f'<section class="card" id="channel-{name}"')[1].split("</section>")[0]


def test_only_admins_open_the_channels_page(app):
    viewer, editor, admin = signed_in(app, "viewer"), signed_in(app, "editor"), signed_in(app, "admin")
    for client in (viewer, editor):
        assert client.get("/admin/channels/").status_code == 403
        assert post(client, "/admin/channels/email/test").status_code == 403
        assert post(client, "/admin/channels/sms", **{"s-TWILIO_FROM": "+15005550006"}).status_code == 403
    assert 'href="/admin/channels/">Channels</a>' in admin.get("/admin/").get_data(as_text=True)
    page = admin.get("/admin/channels/").get_data(as_text=True)
    plugins = page.split('id="plugins-table"')[1].split("</table>")[0]
    for plugin in ("plugins.email_smtp", "plugins.sms_twilio", "plugins.webhook"):
        row = plugins.split(f"<td>{plugin}</td>")[1].split("</tr>")[0]
        assert "built in" in row
    email = _section(page, "email")
    for variable in ("NUDGE_SMTP_URL", "NUDGE_MAIL_FROM", "NUDGE_POSTAL_ADDRESS", "NUDGE_SMTP_CONNECTIONS"):
        assert variable in email  # generated from the channel's config_schema
    assert "Test connection" in email
    assert post(admin, "/admin/channels/pigeon/test").status_code == 404


def test_secrets_are_write_only_and_the_change_is_audited(app, twilio):
    admin = signed_in(app, "admin")
    sms = _section(admin.get("/admin/channels/").get_data(as_text=True), "sms")
    assert "not set" in sms.split('for="f-s-TWILIO_AUTH_TOKEN"')[1].split("</label>")[0]
    response = post(
        admin,
        "/admin/channels/sms",
        **{
            "s-TWILIO_ACCOUNT_SID": twilio.account_sid,
            "s-TWILIO_AUTH_TOKEN": TOKEN,
            "s-TWILIO_FROM": "+15005550006",
            "s-TWILIO_API_BASE": twilio.url,
        },
    )
    assert response.status_code == 302
    page = admin.get("/admin/channels/").get_data(as_text=True)
    assert (
        "Saved NUDGE_TWILIO_ACCOUNT_SID, NUDGE_TWILIO_API_BASE, NUDGE_TWILIO_AUTH_TOKEN, NUDGE_TWILIO_FROM"
        in page_flash(page)
    )
    assert TOKEN not in page
    label = _section(page, "sms").split('for="f-s-TWILIO_AUTH_TOKEN"')[1].split("</label>")[0]
    assert ">set<" in label
    [entry] = audited(app, "settings.changed")
    assert TOKEN not in str(entry.detail) and "TWILIO_AUTH_TOKEN" in entry.detail["keys"]
    assert app.config["TWILIO_AUTH_TOKEN"] == TOKEN
    assert app.extensions["nudge.plugins"].settings["sms"]["TWILIO_AUTH_TOKEN"] == TOKEN
    # an empty secret field keeps the secret; "clear" removes it
    post(
        admin,
        "/admin/channels/sms",
        **{
            "s-TWILIO_FROM": "+15005550006",
            "s-TWILIO_ACCOUNT_SID": twilio.account_sid,
            "s-TWILIO_API_BASE": twilio.url,
        },
    )
    assert app.config["TWILIO_AUTH_TOKEN"] == TOKEN
    form = {"clear-TWILIO_AUTH_TOKEN": "on", "s-TWILIO_FROM": "+15005550006", "s-TWILIO_API_BASE": twilio.url}
    response = post(admin, "/admin/channels/sms", **form, **{"s-TWILIO_ACCOUNT_SID": twilio.account_sid})
    assert response.status_code == 422  # an account without its token: the channel's own cross-field check
    error = response.get_data(as_text=True).split('id="f-s-TWILIO_AUTH_TOKEN-error">')[1].split("</p>")[0]
    assert "is required once Twilio is configured" in error and TOKEN not in response.get_data(as_text=True)
    assert post(admin, "/admin/channels/sms", **form).status_code == 302  # the account cleared too
    assert not app.config.get("TWILIO_AUTH_TOKEN") and not app.config.get("TWILIO_ACCOUNT_SID")
    with app.app_context():
        assert "TWILIO_AUTH_TOKEN" not in instance_settings.stored_values(get_session())


def test_a_bad_channel_setting_gets_the_schema_error_and_hostile_values_are_escaped(app):
    admin = signed_in(app, "admin")
    response = post(admin, "/admin/channels/email", **{"s-SMTP_CONNECTIONS": "many", "s-SMTP_DOMAIN_CONNECTIONS": "2"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert (
        "must be an integer, got &#39;many&#39;" in page.split('id="f-s-SMTP_CONNECTIONS-error">')[1].split("</p>")[0]
    )
    assert audited(app, "settings.changed") == []
    assert 'id="f-s-SMTP_DOMAIN_CONNECTIONS-error"' not in page
    hostile = f"{SCRIPT} {BREAKOUT}"
    assert post(admin, "/admin/channels/sms", **{"s-SMS_HELP_TEXT": hostile}).status_code == 302
    escaped(admin.get("/admin/channels/").get_data(as_text=True), hostile)
    assert app.config["SMS_HELP_TEXT"] == hostile


def test_email_test_connection_reports_the_smtp_servers_answer(app, smtp_server):
    admin = signed_in(app, "admin")
    dead = f"smtp://127.0.0.1:{free_port()}"
    assert post(admin, "/admin/channels/email", **{"s-SMTP_URL": dead}).status_code == 302
    answer = post(admin, "/admin/channels/email/test", hx=True)
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert "status-error" in text and "127.0.0.1" in text
    assert post(admin, "/admin/channels/email", **{"s-SMTP_URL": smtp_server.url}).status_code == 302
    text = post(admin, "/admin/channels/email/test", hx=True).get_data(as_text=True)
    assert "status-ok" in text and f"127.0.0.1:{smtp_server.port}" in text and "answered NOOP with 250" in text
    assert smtp_server.messages == []  # nothing was sent
    # without htmx: the answer in the flash of the page it returns to
    response = post(admin, "/admin/channels/email/test")
    assert response.status_code == 302
    assert "answered NOOP with 250" in page_flash(admin.get("/admin/channels/").get_data(as_text=True))


def test_sms_test_connection_fetches_the_account_from_twilio(app, twilio):
    admin = signed_in(app, "admin")
    form = {
        "s-TWILIO_ACCOUNT_SID": twilio.account_sid,
        "s-TWILIO_AUTH_TOKEN": "wrong-token",
        "s-TWILIO_FROM": "+15005550006",
        "s-TWILIO_API_BASE": twilio.url,
    }
    assert post(admin, "/admin/channels/sms", **form).status_code == 302
    text = post(admin, "/admin/channels/sms/test", hx=True).get_data(as_text=True)
    assert "status-error" in text and "Twilio answered 401" in text and "Authenticate" in text
    assert post(admin, "/admin/channels/sms", **{**form, "s-TWILIO_AUTH_TOKEN": TOKEN}).status_code == 302
    text = post(admin, "/admin/channels/sms/test", hx=True).get_data(as_text=True)
    assert "status-ok" in text and "account (Nudge test account) is active" in text
    assert twilio.messages == {}


def test_a_channel_without_a_test_says_it_is_not_supported(app):
    admin = signed_in(app, "admin")
    text = post(admin, "/admin/channels/webhook/test", hx=True).get_data(as_text=True)
    assert "not supported" in text and "status-warn" in text
