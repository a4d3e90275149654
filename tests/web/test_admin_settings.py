"""The Settings page through the test client: admins only, values saved in the database under the config file and
the environment (which win, shown read-only), the same validation as at start-up with an error per field, audited,
escaped, and a change seen by a running worker process without a restart."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from server import instance_settings
from server.app import create_app
from server.db import get_session
from server.models import StoredSetting

from ..helpers import api_key, load_rules, post_event, signed_in
from ..servers import reap
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, page_flash, post


@pytest.fixture
def config(config):
    """No postal address from the start-up options: it is the admin's to set."""
    return {k: v for k, v in config.items() if k != "POSTAL_ADDRESS"}


#: the boxes ticked by default, posted as the browser posts the unchanged form
TICKED = {"s-TRACK_OPENS": "on", "s-TRACK_CLICKS": "on"}


def _save(client, ticked=TICKED, **values):
    """Post the Settings form with *values* (by key) typed in."""
    return post(client, "/admin/settings/", **ticked, **{f"s-{key}": value for key, value in values.items()})


def _stored(app) -> dict:
    with app.app_context():
        return instance_settings.stored_values(get_session())


def test_only_admins_open_and_change_settings(app):
    viewer, editor, admin = signed_in(app, "viewer"), signed_in(app, "editor"), signed_in(app, "admin")
    for client in (viewer, editor):
        assert client.get("/admin/settings/").status_code == 403
        assert client.get("/admin/settings/checks").status_code == 403
        assert post(client, "/admin/settings/", **{"s-FREQUENCY_CAP": "3/7d"}).status_code == 403
        assert 'href="/admin/settings/"' not in client.get("/admin/").get_data(as_text=True)
    assert _stored(app) == {}
    assert 'href="/admin/settings/">Settings</a>' in admin.get("/admin/").get_data(as_text=True)
    page = admin.get("/admin/settings/").get_data(as_text=True)
    for variable in (
        "NUDGE_MAIL_FROM",
        "NUDGE_POSTAL_ADDRESS",
        "NUDGE_BASE_URL",
        "NUDGE_DEFAULT_TIMEZONE",
        "NUDGE_FREQUENCY_CAP",
        "NUDGE_TEAMS",
        "NUDGE_TRACK_OPENS",
        "NUDGE_TRACK_CLICKS",
    ):
        assert variable in page
    assert post(admin, "/admin/settings/", csrf=False, **{"s-FREQUENCY_CAP": "3/7d"}).status_code in (400, 403)
    assert _stored(app) == {}


def test_a_saved_setting_applies_at_once_and_is_audited(app):
    admin = signed_in(app, "admin")
    response = _save(admin, FREQUENCY_CAP=" 2 / 1d ", DEFAULT_TIMEZONE="Europe/Berlin")
    assert response.status_code == 302
    assert "Saved NUDGE_DEFAULT_TIMEZONE, NUDGE_FREQUENCY_CAP" in page_flash(
        admin.get("/admin/settings/").get_data(as_text=True)
    )
    assert _stored(app) == {"FREQUENCY_CAP": "2 / 1d", "DEFAULT_TIMEZONE": "Europe/Berlin"}
    assert app.config["FREQUENCY_CAP"] == "2/1d"  # normalised by load_config's own validator
    assert app.config["DEFAULT_TIMEZONE"] == "Europe/Berlin"
    [entry] = audited(app, "settings.changed")
    assert entry.actor.startswith("user:") and entry.detail == {"keys": ["DEFAULT_TIMEZONE", "FREQUENCY_CAP"]}
    page = admin.get("/admin/settings/").get_data(as_text=True)
    assert 'value="2/1d"' in page and f"saved by {admin.email} at " in page  # the person, not user:<id>
    # an emptied field goes back to the default; an unticked box is stored as off
    assert _save(admin, ticked={"s-TRACK_CLICKS": "on"}, DEFAULT_TIMEZONE="Europe/Berlin").status_code == 302
    assert _stored(app) == {"DEFAULT_TIMEZONE": "Europe/Berlin", "TRACK_OPENS": False}
    assert app.config["FREQUENCY_CAP"] is None and app.config["TRACK_OPENS"] is False


def test_invalid_values_get_the_start_up_errors_one_per_field_and_nothing_is_saved(app):
    admin = signed_in(app, "admin")
    response = _save(
        admin,
        BASE_URL="ftp://nudge.example",
        DEFAULT_TIMEZONE="Mars/Olympus",
        FREQUENCY_CAP="lots",
        TEAMS="sales",
        MAIL_FROM="Acme <news@acme.example>",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for key, text in (
        ("BASE_URL", "must be an absolute http(s) URL"),
        ("DEFAULT_TIMEZONE", "unknown time zone"),
        ("FREQUENCY_CAP", "must be a count and a window such as 3/7d"),
        ("TEAMS", "has no &#39;=&#39;"),
    ):
        error = page.split(f'id="f-s-{key}-error">')[1].split("</p>")[0]
        assert text in error, (key, error)
    assert 'id="f-s-MAIL_FROM-error"' not in page  # the valid field has no error, but is not saved alone either
    assert _stored(app) == {} and audited(app, "settings.changed") == []
    assert app.config["BASE_URL"].startswith("http://127.0.0.1")


def test_a_refused_save_keeps_what_was_typed_in_every_field(app):
    """The page that says what was wrong still holds every value typed, the valid ones too: saving again after fixing
    the one mistake saves them all, rather than quietly dropping the others."""
    admin = signed_in(app, "admin")
    response = _save(
        admin,
        ticked={"s-TRACK_CLICKS": "on", "s-TRACK_TEXT_LINKS": "on"},
        FREQUENCY_CAP="lots",
        MAIL_FROM="Acme <news@acme.example>",
        DEFAULT_TIMEZONE="Europe/Berlin",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="f-s-FREQUENCY_CAP" name="s-FREQUENCY_CAP" type="text" value="lots"' in page
    assert 'name="s-MAIL_FROM" type="text" value="Acme &lt;news@acme.example&gt;"' in page
    assert 'name="s-DEFAULT_TIMEZONE" type="text" value="Europe/Berlin"' in page
    ticked = set(re.findall(r'name="(s-TRACK_[A-Z_]+)" checked', page))
    assert ticked == {"s-TRACK_CLICKS", "s-TRACK_TEXT_LINKS"}
    assert _stored(app) == {}


def test_the_environment_and_the_file_win_and_are_shown_read_only(app, clock, monkeypatch, tmp_path):
    admin = signed_in(app, "admin")
    assert _save(admin, DEFAULT_TIMEZONE="Europe/Berlin").status_code == 302
    (tmp_path / "home" / "nudge.toml").write_text('frequency_cap = "4/1w"\n')
    monkeypatch.setenv("NUDGE_DEFAULT_TIMEZONE", "Asia/Tokyo")
    with app.app_context():  # another change moves the version on: every process rebuilds its configuration
        session = get_session()
        instance_settings.bump(session)
        session.commit()
    clock.advance(2)  # past SETTINGS_RECHECK: this web process looks at the version again
    page = admin.get("/admin/settings/").get_data(as_text=True)
    assert app.config["DEFAULT_TIMEZONE"] == "Asia/Tokyo" and app.config["FREQUENCY_CAP"] == "4/1w"
    tz = page.split('id="setting-DEFAULT_TIMEZONE"')[1].split("</div>")[0]
    assert "readonly" in tz and "Set by the environment (NUDGE_DEFAULT_TIMEZONE)" in tz
    cap = page.split('id="setting-FREQUENCY_CAP"')[1].split("</div>")[0]
    assert "readonly" in cap and "Set by the config file" in cap
    # a posted value for it changes nothing; the saved one stays below the environment's
    _save(admin, DEFAULT_TIMEZONE="UTC", FREQUENCY_CAP="1/1d")
    assert _stored(app) == {"DEFAULT_TIMEZONE": "Europe/Berlin"}
    with app.app_context():
        errors = instance_settings.save(app, {"DEFAULT_TIMEZONE": "UTC"}, "test")
    assert errors == {"DEFAULT_TIMEZONE": "NUDGE_DEFAULT_TIMEZONE cannot be changed here"}


def test_hostile_values_are_escaped_and_the_checks_link_to_their_fix(app):
    admin = signed_in(app, "admin")
    checks = admin.get("/admin/settings/checks", headers={"HX-Request": "true"}).get_data(as_text=True)
    postal = checks.split("email: postal address")[1].split("</tr>")[0]
    assert "not set" in postal and 'href="/admin/settings/#setting-POSTAL_ADDRESS"' in postal
    hostile = f"{SCRIPT} 1 Main St {BREAKOUT}"
    assert _save(admin, POSTAL_ADDRESS=hostile).status_code == 302
    escaped(admin.get("/admin/settings/").get_data(as_text=True), hostile)
    checks = admin.get("/admin/settings/checks", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "shown in every marketing email" in checks.split("email: postal address")[1].split("</tr>")[0]


def test_another_web_process_sees_a_change_once_its_recheck_interval_has_passed(app, config, clock):
    """A web process checks the settings' version at most every SETTINGS_RECHECK seconds (not a query a request)."""
    other = create_app({**config, "SETTINGS_RECHECK": 5}, clock=clock)
    try:
        admin = signed_in(app, "admin")
        assert _save(admin, BASE_URL="https://nudge.example").status_code == 302
        assert other.config["BASE_URL"] == "http://127.0.0.1:8000"  # nothing read yet
        other.test_client().get("/health")
        assert other.config["BASE_URL"] == "http://127.0.0.1:8000"  # it read the version at start, 0 s ago
        clock.advance(6)
        other.test_client().get("/health")
        assert other.config["BASE_URL"] == "https://nudge.example"
    finally:
        other.extensions["nudge.queue"].close()
        other.extensions["nudge.db"].dispose()


def test_a_running_worker_puts_a_newly_saved_postal_address_in_the_next_email(app, client, config, smtp_server):
    """A real ``nudge worker`` started before the change sends the next marketing email with the new address."""
    load_rules(app)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update({f"NUDGE_{k}": str(v) for k, v in config.items()})
    worker = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = []
        for line in worker.stdout:  # it logs the checks once it has started: no postal address then
            seen.append(line)
            if "email: postal address" in line:
                break
        assert "not set" in seen[-1], "".join(seen)
        admin = signed_in(app, "admin")
        assert _save(admin, POSTAL_ADDRESS="Acme Ltd, 9 Elm Road, Shelbyville").status_code == 302
        assert post_event(client, api_key(app), email="ana@example.com", form="newsletter").status_code == 202
        [msg] = smtp_server.wait_for(1)
    finally:
        reap(worker)
    assert "Acme Ltd, 9 Elm Road, Shelbyville" in msg.get_body(("plain",)).get_content()
    with app.app_context():
        assert get_session().get(StoredSetting, "POSTAL_ADDRESS").value == "Acme Ltd, 9 Elm Road, Shelbyville"


def test_teams_and_their_destinations_are_checked_against_the_installed_channels(app):
    admin = signed_in(app, "admin")
    response = _save(admin, TEAMS="sales=ana@x.example;ops=pager:night-shift")
    assert response.status_code == 422
    error = response.get_data(as_text=True).split('id="f-s-TEAMS-error">')[1].split("</p>")[0]
    assert "pager" in error and _stored(app) == {}
    assert _save(admin, TEAMS="sales=ana@x.example,bob@x.example;ops=webhook:ops-hook").status_code == 302
    assert [str(m) for m in app.config["TEAMS"]["ops"]] == ["webhook:ops-hook"]
    page = admin.get("/admin/settings/").get_data(as_text=True)
    assert 'value="sales=ana@x.example,bob@x.example;ops=webhook:ops-hook"' in page


def test_channels_that_need_an_opt_in_are_set_on_the_page_and_checked_against_the_installed_channels(app):
    """``CONSENT_REQUIRED`` (GDPR: email only to contacts who opted in) is an admin's to set, as other settings."""
    admin = signed_in(app, "admin")
    assert 'name="s-CONSENT_REQUIRED"' in admin.get("/admin/settings/").get_data(as_text=True)
    response = _save(admin, CONSENT_REQUIRED="email,fax")
    assert response.status_code == 422
    error = response.get_data(as_text=True).split('id="f-s-CONSENT_REQUIRED-error">')[1].split("</p>")[0]
    assert "fax" in error and "it can name: email, sms" in error and _stored(app) == {}
    assert _save(admin, CONSENT_REQUIRED=" email ").status_code == 302
    assert app.config["CONSENT_REQUIRED"] == "email"
    page = admin.get("/admin/settings/").get_data(as_text=True)
    assert 'id="f-s-CONSENT_REQUIRED" name="s-CONSENT_REQUIRED" type="text" value="email"' in page
