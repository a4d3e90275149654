"""The audit log in a real browser: an admin narrows it by who, kind of change and date, and pages back."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from server.db import get_session
from server.models import AuditEntry, Segment, User, utcnow

from .conftest import make_user, shot, sign_in


def test_an_admin_filters_the_audit_log(app, page):
    make_user(app, "root@example.com", role="admin")
    editor = make_user(app, "ed@example.com", role="editor")
    now = utcnow()
    with app.app_context():
        session = get_session()
        session.add(Segment(name="VIPs", condition='tag == "vip"'))
        session.add_all(
            AuditEntry(
                actor="cli",
                action="rule.activate",
                target_type="rule",
                target_id=str(n),
                at=now - timedelta(days=3),
                detail={"version": n},
            )
            for n in range(60)
        )
        session.add(
            AuditEntry(
                actor=f"user:{editor}",
                action="segment.updated",
                target_type="segment",
                target_id="<b>VIPs</b>",
                detail={"changed": ["condition"]},
                at=now,
            )
        )
        session.commit()
        assert session.get(User, editor).email == "ed@example.com"
    sign_in(page, "root@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(50)  # one page
    expect(rows.first).to_contain_text("ed@example.com")
    expect(rows.first).to_contain_text("segment <b>VIPs</b>")  # shown as text
    page.get_by_role("link", name="Older entries").click()
    expect(rows).to_have_count(11)

    page.get_by_label("Who").fill("ed@example.com")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("segment.updated")
    shot(page, "audit-filtered")

    page.get_by_label("Who").fill("")
    page.get_by_label("Kind of change").select_option("rule")
    page.get_by_label("To").fill((now - timedelta(days=2)).strftime("%Y-%m-%d"))
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"kind=rule"))
    expect(rows).to_have_count(50)
    expect(page.locator("tbody")).not_to_contain_text("segment.updated")
    page.get_by_role("link", name="Older entries").click()
    expect(rows).to_have_count(10)  # 60 rule entries on that day, in two pages
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(50)
    shot(page, "audit")
