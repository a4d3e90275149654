"""What every page of the admin and the public pages needs from the browser's side: an icon (no 404 in the
console on each page), and an htmx call made after signing out in another tab that says so, with a way back in."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import make_user, sign_in
from .editor_helpers import type_text


def _failures(page) -> list[str]:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    return failed


def test_admin_and_public_pages_have_an_icon_and_no_404_in_the_console(app, page):
    from tests.web.test_forms import make_form

    make_form(app, slug="news")
    make_user(app, "ed@example.com", role="editor")
    failed = _failures(page)
    for url in ("/admin/login", "/f/news"):
        page.goto(url)
        icon = page.locator('link[rel="icon"]')
        expect(icon).to_have_count(1)
        href = icon.get_attribute("href")
        answer = page.request.get(href)
        assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg+xml"), url
    sign_in(page, "ed@example.com")
    expect(page.locator('link[rel="icon"]')).to_have_attribute("href", re.compile(r"^/static/favicon\.svg"))
    page.wait_for_load_state("networkidle")
    assert failed == []


def test_an_htmx_call_after_signing_out_in_another_tab_says_so_and_links_to_sign_in(app, page):
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/segments/new")
    other = page.context.new_page()  # the same browser: another tab, sharing its cookies
    other.goto("/admin/")
    other.get_by_role("button", name="Sign out").click()
    other.wait_for_url(re.compile(r"/admin/login"))
    other.close()
    type_text(page, 'tag == "vip"', "segment-condition")  # the live count: an htmx POST
    alert = page.locator("#flash-alert")
    expect(alert).to_contain_text("You are signed out")
    expect(alert).not_to_contain_text("expired")
    link = alert.get_by_role("link", name="Sign in again")
    expect(link).to_have_attribute("href", "/admin/login?next=/admin/segments/new")
    link.click()
    page.wait_for_url(re.compile(r"/admin/login\?next="))
