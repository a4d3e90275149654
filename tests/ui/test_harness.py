"""The browser harness itself: a real Chromium reaches the app through waitress and signs in."""

from __future__ import annotations

from .conftest import make_user, shot, sign_in


def test_a_person_signs_in_through_the_browser_and_sees_the_dashboard(app, page):
    make_user(app, "ana@example.com")
    sign_in(page, "ana@example.com")
    assert page.get_by_role("heading", level=1).inner_text().strip()
    assert page.context.cookies()[0]["httpOnly"] is True
    shot(page, "dashboard")


def test_a_wrong_password_stays_on_the_sign_in_page_with_an_error(app, page):
    make_user(app, "ana@example.com")
    page.goto("/admin/login")
    page.get_by_label("Email").fill("ana@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert "Wrong email or password" in page.get_by_role("alert").inner_text()
    assert page.url.endswith("/admin/login")
