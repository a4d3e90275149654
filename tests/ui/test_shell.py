"""The admin shell in a real browser: keyboard navigation, htmx requests with the CSRF token, the flash area."""

from __future__ import annotations

import re

from .conftest import make_user, shot, sign_in


def test_the_skip_link_and_the_navigation_work_from_the_keyboard(app, page):
    make_user(app, "kim@example.com", role="editor")
    sign_in(page, "kim@example.com")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    assert skip.evaluate("el => el === document.activeElement")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Dashboard").get_attribute("aria-current") == "page"
    page.get_by_role("link", name="kim@example.com").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/admin/account$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Your account"
    shot(page, "account")


def test_htmx_requests_carry_the_csrf_token_and_their_errors_reach_the_alert_area(app, page):
    make_user(app, "kim@example.com", role="viewer")
    sign_in(page, "kim@example.com")
    # an htmx request from the page: the token comes from hx-headers on <body>, the error from the server
    page.evaluate("""htmx.ajax('POST', '/admin/account', {source: document.body, swap: 'none',
                     values: {current_password: 'wrong', new_password: 'x', repeat: 'x'}})""")
    alert = page.locator("#flash-alert")
    alert.get_by_text("This is not your current password.").wait_for()
    assert page.get_by_role("alert").inner_text().startswith("Your password was not changed")
    # a request the server refuses without a message of its own is still reported, not swallowed
    page.evaluate("htmx.ajax('GET', '/admin/no-such-page', {source: document.body, swap: 'none'})")
    alert.get_by_text(re.compile(r"server answered 404")).wait_for()
    shot(page, "flash-error")


def test_the_dashboard_shows_what_needs_attention(app, page):
    from datetime import timedelta

    from server.db import get_session
    from server.models import Message, utcnow

    with app.app_context():
        session = get_session()
        session.add_all(
            [
                Message(
                    key="k1",
                    channel="email",
                    template="welcome",
                    status="pending",
                    data={},
                    created_at=utcnow() - timedelta(minutes=42),
                    next_attempt_at=utcnow() - timedelta(minutes=41),
                ),
                Message(key="k2", channel="sms", template="reminder", status="failed", data={}, error="invalid number"),
                Message(key="k3", channel="email", template="welcome", status="sent", data={}),
            ]
        )
        session.commit()
    make_user(app, "kim@example.com", role="viewer")
    sign_in(page, "kim@example.com")
    oldest = page.get_by_text("Oldest pending send").locator("xpath=..")
    assert oldest.locator("dd").inner_text() == "42 min"
    assert "a due send has waited" in page.get_by_role("region", name="Needs attention").inner_text()
    table = page.get_by_role("region", name="Recent messages")
    table.focus()  # a wide table scrolls from the keyboard
    assert table.evaluate("el => el === document.activeElement")
    assert table.get_by_role("row").count() == 4
    shot(page, "dashboard-attention")
