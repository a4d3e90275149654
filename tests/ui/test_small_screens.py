"""The admin pages on a phone (390×844): each fits the screen's width, so the page never scrolls sideways; only a
wide table scrolls, inside its own frame."""

from __future__ import annotations

import pytest

from server.db import get_session
from server.models import Contact

from .conftest import make_user, shot, sign_in

#: how many pixels past the screen's width count as a sideways scroll (none: rounding stays below one)
SLACK = 1


@pytest.fixture
def phone(page):
    page.set_viewport_size({"width": 390, "height": 844})
    return page


def _overflow(page) -> list[str]:
    """The page's width past the screen, and the innermost elements that stick out (outside a scrolling table)."""
    return page.evaluate(
        """slack => {
          const width = window.innerWidth, out = [];
          if (document.documentElement.scrollWidth <= width + slack) { return out; }
          out.push(`the page is ${document.documentElement.scrollWidth}px wide`);
          for (const e of document.querySelectorAll('main *')) {
            if (e.closest('.table-wrap') || e.closest('svg') !== null && e.tagName !== 'svg') { continue; }
            const r = e.getBoundingClientRect();
            const inner = ![...e.children].some(c => c.getBoundingClientRect().right > width + slack);
            if (r.width > 0 && r.right > width + slack && inner) {
              out.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}: right edge ${Math.round(r.right)}px`);
            }
          }
          return out.slice(0, 6);
        }""",
        SLACK,
    )


def test_the_dashboard_a_contact_and_the_settings_fit_a_phone_screen(app, phone):
    make_user(app, "root@example.com", role="admin")
    with app.app_context():
        session = get_session()
        ana = Contact(email="ana@example.com", first_name="Ana")
        session.add(ana)
        session.commit()
        ana_id = ana.id
    sign_in(phone, "root@example.com")
    # the dashboard's activity charts, the contact's profile beside its consent ledger, the settings' long hints
    for name, path in (
        ("dashboard", "/admin/"),
        ("contact", f"/admin/contacts/{ana_id}"),
        ("settings", "/admin/settings/"),
    ):
        phone.goto(path)
        shot(phone, f"phone-{name}")
        assert _overflow(phone) == [], (path, _overflow(phone))


def test_the_settings_checks_fit_a_phone_screen_their_long_findings_wrapping(app, phone):
    make_user(app, "root@example.com", role="admin")
    sign_in(phone, "root@example.com")
    phone.goto("/admin/settings/")
    phone.locator("#checks-table").wait_for()  # loaded by htmx after the page
    shot(phone, "phone-settings-checks")
    assert _overflow(phone) == [], _overflow(phone)
    # a finding names long URLs and NUDGE_… variables: they wrap, so the whole table shows in its frame (a frame
    # that scrolls sideways hides the findings and their fixes on a phone, which shows no scroll bar)
    sizes = phone.evaluate(
        """() => { const table = document.querySelector('#checks-table'), frame = table.closest('.table-wrap');
                   return {table: table.getBoundingClientRect().width, frame: frame.clientWidth,
                           right: frame.getBoundingClientRect().right, screen: window.innerWidth}; }"""
    )
    assert sizes["table"] <= sizes["frame"] + SLACK and sizes["right"] <= sizes["screen"], sizes
