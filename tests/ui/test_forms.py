"""Forms in a real browser: an editor creates a form, copies its embed code, someone signs up on its public page,
and the submission is listed on the form's page."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import make_user, shot, sign_in


def test_an_editor_creates_a_form_and_sees_a_sign_up_listed(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Forms").click()
    page.get_by_role("link", name="New form").click()
    page.get_by_label("Slug").fill("news")
    page.get_by_label("Consent wording").fill("Yes, send me the <b>newsletter</b>.")
    page.get_by_label("Double opt-in", exact=False).uncheck()
    page.get_by_role("button", name="Save form").click()
    expect(page.locator(".flash-message")).to_contain_text("Form 'news' is saved")
    page.get_by_role("button", name="Copy embed code").click()
    expect(page.get_by_role("button", name=re.compile("Copied|Selected"))).to_be_visible()
    form_url = page.url
    page.goto("/f/news")
    page.get_by_label("Email").fill("nia@example.com")
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="Sign up").click()
    # Post/Redirect/Get: the thank-you page is a GET, so reloading it signs nobody up again
    page.wait_for_url(re.compile(r"/f/news/thanks$"))
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    page.reload()
    expect(page.get_by_text("You are signed up.")).to_be_visible()
    page.goto(form_url)
    row = page.locator("#submissions tbody tr").first
    expect(row).to_contain_text("nia@example.com")
    expect(row).to_contain_text("confirmed")
    expect(page.locator("#submissions tbody tr")).to_have_count(1)
    shot(page, "forms")
