"""Segments in a real browser: an editor types a condition, sees a typo marked at its line and column (and listed
under the editor), fixes it, watches the live count and the first members change as they type, and saves."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from server.db import get_session
from server.models import Contact, ContactTag, Segment

from .conftest import make_user, shot, sign_in
from .editor_helpers import content, doc, line_col, marks, type_text, where

FIELD = "segment-condition"  # the id of the segment page's textarea, which the editor bundle mounts on
TYPO = 'tag == "vip" and contact.frist_name == "Ann"'


def _people(app) -> list[int]:
    """Three VIPs (one with a score of 80 and a hostile name), two others; the VIPs' ids."""
    with app.app_context():
        session = get_session()
        people = [
            Contact(email="ann@example.com", first_name="Ann", score=80, tags=[ContactTag(tag="vip")], fields={}),
            Contact(email="bo@example.com", first_name="<b>Bo</b>", tags=[ContactTag(tag="vip")], fields={}),
            Contact(email="cy@example.com", first_name="Cy", fields={}),
            Contact(email="di@example.com", first_name="Di", tags=[ContactTag(tag="vip")], fields={}),
            Contact(email="ed@example.org", first_name="Ed", score=90, fields={}),
        ]
        session.add_all(people)
        session.commit()
        return [p.id for p in people if p.tags]


def test_an_editor_builds_a_segment_and_watches_its_count(app, page):
    vips = _people(app)
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Name").fill("Top VIPs")
    editor = page.get_by_role("textbox", name="Condition")
    expect(editor).to_have_attribute("contenteditable", "true")

    type_text(page, TYPO, FIELD)
    assert doc(page, FIELD) == TYPO
    mark = marks(page, "error", FIELD)
    expect(mark).to_have_count(1)  # the server's checker answered while typing
    assert where(mark, FIELD) == line_col(TYPO, "contact.frist_name")
    preview = page.locator("#segment-preview")
    line, col = line_col(TYPO, "contact.frist_name")
    expect(preview).to_contain_text(f"line {line}, column {col}")  # and the list under it says where
    expect(preview).to_contain_text("first_name")
    expect(page.locator("#segment-count")).to_have_count(0)
    shot(page, "segment-typo")

    type_text(page, 'tag == "vip"', FIELD)  # fixed
    expect(marks(page, "error", FIELD)).to_have_count(0)
    expect(page.locator("#segment-count")).to_have_text("3")
    sample = preview.get_by_role("link")
    expect(sample).to_have_count(3)
    expect(preview).to_contain_text("<b>Bo</b>")  # a hostile name, as text
    assert [
        int(re.search(r"/admin/contacts/(\d+)$", h).group(1))
        for h in sample.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    ] == vips

    content(page, FIELD).press("End")
    page.keyboard.type(" and contact.score > 50")
    expect(page.locator("#segment-count")).to_have_text("1")
    expect(sample).to_have_count(1)
    expect(sample).to_have_text(re.compile("ann@example.com"))
    shot(page, "segment-editor")

    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("#flash-status")).to_have_text("Segment 'Top VIPs' is saved: 1 contact(s) in it now.")
    with app.app_context():
        row = get_session().scalar(select(Segment).where(Segment.name == "Top VIPs"))
        assert row.condition == 'tag == "vip" and contact.score > 50'
    page.get_by_role("link", name="Segments", exact=True).first.click()
    expect(page.get_by_role("row", name=re.compile("Top VIPs"))).to_contain_text("1")
    shot(page, "segments-list")


def test_a_viewer_reads_a_segment_without_changing_it(app, page):
    _people(app)
    with app.app_context():
        get_session().add(Segment(name="VIPs", condition='tag == "vip"'))
        get_session().commit()
    make_user(app, "vi@example.com", role="viewer")
    sign_in(page, "vi@example.com")
    page.goto("/admin/segments/")
    page.get_by_role("link", name="VIPs").click()
    expect(page.locator("#segment-count")).to_have_text("3")
    expect(page.get_by_role("textbox", name="Condition")).to_have_attribute("aria-readonly", "true")
    expect(page.get_by_role("button", name="Save segment")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete segment")).to_have_count(0)


def test_a_refused_saves_error_goes_once_the_live_check_finds_the_condition_valid(app, page):
    _people(app)
    make_user(app, "ed@example.com", role="editor")
    sign_in(page, "ed@example.com")
    page.goto("/admin/segments/new")
    page.get_by_label("Name").fill("VIPs")
    type_text(page, TYPO, FIELD)
    expect(marks(page, "error", FIELD)).to_have_count(1)
    page.get_by_role("button", name="Save segment").click()  # refused: the page comes back with the error
    error = page.locator("#segment-condition-error")
    expect(error).to_contain_text("frist_name")
    field = page.locator(f"#{FIELD}")
    expect(field).to_have_attribute("aria-invalid", "true")

    type_text(page, 'tag == "vip" and contact.scor > 1', FIELD)  # still wrong: the error stays
    expect(page.locator("#segment-preview")).to_contain_text("scor")
    expect(error).to_contain_text("frist_name")
    expect(field).to_have_attribute("aria-invalid", "true")

    type_text(page, 'tag == "vip"', FIELD)  # fixed: the live count says so, and the old error goes with it
    expect(page.locator("#segment-count")).to_have_text("3")
    expect(error).to_have_count(0)
    expect(field).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field.invalid")).to_have_count(0)
    assert "segment-condition-error" not in (field.get_attribute("aria-describedby") or "")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("#flash-status")).to_have_text("Segment 'VIPs' is saved: 3 contact(s) in it now.")
