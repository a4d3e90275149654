"""Settings and Channels in a real browser: an admin sees the doctor's complaint about the postal address, sets
it, sees the check turn ok and the next email carry it; then tests the SMTP connection from the Channels page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ..helpers import api_key, load_rules, post_event, run_worker
from .conftest import make_user, shot, sign_in

ADDRESS = "Acme Ltd, 9 Elm Road, Shelbyville"


@pytest.fixture
def config(config):
    """No postal address from the start-up options: the admin sets it in the browser."""
    return {k: v for k, v in config.items() if k != "POSTAL_ADDRESS"}


def test_an_admin_sets_the_postal_address_and_sees_it_take_effect(app, page, smtp_server):
    make_user(app, "root@example.com", role="admin")
    load_rules(app)
    sign_in(page, "root@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    checks = page.locator("#checks-table")
    postal = checks.locator("tr", has_text="email: postal address")
    expect(postal).to_contain_text("not set")
    postal.get_by_role("link", name="Change NUDGE_POSTAL_ADDRESS").click()
    page.get_by_label("NUDGE_POSTAL_ADDRESS").fill(ADDRESS)
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".flash-message")).to_contain_text("Saved NUDGE_POSTAL_ADDRESS")
    expect(page.get_by_label("NUDGE_POSTAL_ADDRESS")).to_have_value(ADDRESS)
    expect(checks.locator("tr", has_text="email: postal address")).to_contain_text("shown in every marketing email")
    shot(page, "settings")

    with app.test_client() as client:
        assert post_event(client, api_key(app), email="ana@example.com", form="newsletter").status_code == 202
    run_worker(app)
    [msg] = smtp_server.wait_for(1)
    assert ADDRESS in msg.get_body(("plain",)).get_content()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Channels").click()
    # loaded (htmx, a deferred script, set up): a click before that posts the form without htmx, and the answer
    # comes as a flash message on the page it redirects to, not in the form's status area
    page.wait_for_url("**/admin/channels/")
    email = page.locator("#channel-email")
    email.get_by_role("button", name="Test connection").click()
    expect(email.locator(".test-result")).to_contain_text("answered NOOP with 250")
    expect(page.locator("#plugins-table")).to_contain_text("plugins.email_smtp")
    shot(page, "channels")
