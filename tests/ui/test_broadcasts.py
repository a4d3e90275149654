"""Broadcasts in a real browser: an editor picks a template and a segment, sees the audience, sends, and watches the
progress reach 100% while a worker sends (run between polls); the real SMTP server receives the mails. A scheduled
broadcast cancelled before its time sends nothing when its time comes."""

from __future__ import annotations

import datetime as dt

from playwright.sync_api import expect

from server.db import get_session
from server.engine.jobs import requeue_due
from server.models import Contact, ContactTag, Segment, utcnow

from ..helpers import run_worker
from .conftest import make_user, shot, sign_in


def _editor_with_vips(app, page, members: int) -> None:
    """*members* VIP contacts (v0@example.com …) in the segment "VIPs", and an editor signed in on *page*."""
    with app.app_context():
        session = get_session()
        for n in range(members):
            session.add(Contact(email=f"v{n}@example.com", tags=[ContactTag(tag="vip")], fields={}))
        session.add(Segment(name="VIPs", condition='tag == "vip"'))
        session.commit()
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")


def test_an_editor_sends_a_broadcast_and_watches_it_reach_100_percent(app, page, smtp_server):
    _editor_with_vips(app, page, 3)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Broadcasts").click()
    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Template").select_option("email:welcome")
    page.get_by_label("Segment").select_option("VIPs")
    expect(page.locator("#audience-count")).to_have_text("3")
    page.get_by_role("button", name="Send broadcast").click()
    expect(page.locator(".flash-message")).to_contain_text("on its way to 3 member(s)")
    expect(page.locator("#count-queued")).to_have_text("3")
    run_worker(app)  # between polls
    expect(page.locator("#broadcast-percent")).to_have_text("100%", timeout=10000)
    expect(page.locator("#count-sent")).to_have_text("3")
    # the listed messages follow the counts without a reload, and the bar spans the width of its text
    expect(page.locator("#broadcast-messages .status-sent")).to_have_count(3)
    expect(page.locator("#broadcast-messages .status-pending")).to_have_count(0)
    # the results follow too (the send job's rollup counted them), and nothing is left to cancel
    expect(page.locator("#result-sent")).to_have_text("3")
    expect(page.get_by_role("button", name="Cancel broadcast")).to_have_count(0)
    assert page.locator("#broadcast-bar").bounding_box()["width"] > 400
    assert sorted(m["To"] for m in smtp_server.wait_for(3)) == ["v0@example.com", "v1@example.com", "v2@example.com"]
    shot(page, "broadcasts")


def test_an_editor_schedules_a_broadcast_then_cancels_it_and_nothing_is_sent(app, page, smtp_server):
    _editor_with_vips(app, page, 2)
    page.goto(page.url.split("/admin")[0] + "/admin/broadcasts/new")
    page.get_by_label("Template").select_option("email:welcome")
    page.get_by_label("Segment").select_option("VIPs")
    # the audience arrives and the form grows: a click before that lands where the radio was, not where it is
    expect(page.locator("#audience-count")).to_have_text("2")
    at = (utcnow() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("At", exact=True).check()
    page.get_by_label("Time (UTC)").fill(at)
    page.get_by_role("button", name="Send broadcast").click()
    expect(page.locator(".flash-message")).to_contain_text("is scheduled for")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Cancel broadcast").click()
    expect(page.locator("#count-queued")).to_have_text("2")  # dismissed: nothing happened
    assert "2 message(s) not yet sent will never be sent" in questions[0]
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel broadcast").click()
    expect(page.locator(".flash-message")).to_contain_text("2 message(s) not yet sent will not be sent")
    expect(page.locator("#count-cancelled")).to_have_text("2")
    expect(page.get_by_role("button", name="Cancel broadcast")).to_have_count(0)
    with app.app_context():
        requeue_due(now=int((utcnow() + dt.timedelta(days=3)).timestamp()))
    run_worker(app)
    assert smtp_server.messages == []
    shot(page, "broadcast-cancelled")
